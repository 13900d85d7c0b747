// promtool's naming lints, without promtool, over every family the sidecar and the control plane
// register: a counter's name ends in `_total` and nothing else's does (prom-client's defaults had
// three gauges named `*_total`); `_bucket`/`_count`/`_sum` belong to histograms; every family has
// help. test/system/promtool.test.ts runs the real `promtool check metrics` on live scrapes.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DROPPED_DEFAULT_METRICS, SidecarMetrics } from '../../../proxy/telemetry/metrics.js'
import { startTestControlPlane, type TestControlPlane } from '../../helpers/control-plane.js'

interface Family {
  name: string
  type: string
  help: string
}

function families(r: Registry): Family[] {
  return r.getMetricsAsArray() as unknown as Family[]
}

/** promtool's findings on names and types, as "<name> <why>" lines; [] when clean. */
function namingFindings(list: readonly Family[]): string[] {
  const out: string[] = []
  for (const f of list) {
    if (f.type === 'counter' && !f.name.endsWith('_total')) out.push(`${f.name} counter metrics should have "_total" suffix`)
    if (f.type !== 'counter' && f.name.endsWith('_total')) out.push(`${f.name} non-counter metrics should not have "_total" suffix`)
    if (f.type !== 'histogram' && f.name.endsWith('_bucket')) out.push(`${f.name} non-histogram metrics should not have "_bucket" suffix`)
    if (f.type !== 'histogram' && f.type !== 'summary' && /_(count|sum)$/.test(f.name)) out.push(`${f.name} non-histogram and non-summary metrics should not have "_count"/"_sum" suffix`)
    if (!f.help) out.push(`${f.name} no help text`)
    if (!/^[a-z_:][a-z0-9_:]*$/.test(f.name)) out.push(`${f.name} metric names should be written in 'snake_case' not 'camelCase'`)
  }
  return out
}

test('the checker itself flags a gauge named _total and a counter without it', () => {
  expect(namingFindings([{ name: 'x_active_total', type: 'gauge', help: 'h' }, { name: 'x_requests', type: 'counter', help: 'h' }, { name: 'x_total', type: 'counter', help: 'h' }])).toEqual([
    'x_active_total non-counter metrics should not have "_total" suffix',
    'x_requests counter metrics should have "_total" suffix',
  ])
})

test("every sidecar family, prom-client's process and Node defaults included, is named by its type", () => {
  const list = families(new SidecarMetrics().registry)
  expect(list.some((f) => f.name.startsWith('nodejs_'))).toBe(true)
  expect(namingFindings(list)).toEqual([])
})

test('the dropped *_total gauges keep their by-type gauge, and docs/observability.md names each', () => {
  const names = new Set(families(new SidecarMetrics().registry).map((f) => f.name))
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/observability.md', import.meta.url)), 'utf8')
  for (const dropped of DROPPED_DEFAULT_METRICS) {
    expect(names.has(dropped)).toBe(false)
    expect(doc).toContain(`\`${dropped}\``)
  }
  // nodejs_active_resources needs process.getActiveResourcesInfo (Node ≥ 17.3), which Node 20 has.
  for (const kept of ['nodejs_active_handles', 'nodejs_active_requests', 'nodejs_active_resources']) expect(names.has(kept), kept).toBe(true)
})

describe('control plane', () => {
  let cp: TestControlPlane
  beforeAll(async () => {
    cp = await startTestControlPlane()
  })
  afterAll(async () => {
    await cp?.close()
  })

  test('every control-plane family is named by its type', () => {
    const list = families(cp.cp.metrics)
    expect(list.length).toBeGreaterThan(5)
    expect(namingFindings(list)).toEqual([])
  })
})
