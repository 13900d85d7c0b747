import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { ISTIO_LABELS, SidecarMetrics } from '../../../proxy/telemetry/index.js'
import { TcpMetrics } from '../../../proxy/l4/index.js'

// docs/observability.md's metric table and the registry must list the same metrics, with the same
// type and labels, both ways. prom-client's process_*/nodejs_* defaults are one documented row.
const DOC = readFileSync(fileURLToPath(new URL('../../../docs/observability.md', import.meta.url)), 'utf8')
const DEFAULTS = /^(process_|nodejs_)/

interface Row {
  type: string
  labels: string[]
}

function docRows(): Map<string, Row> {
  const section = DOC.slice(DOC.indexOf('## Metrics'), DOC.indexOf('### Grafana'))
  const rows = new Map<string, Row>()
  for (const line of section.split('\n')) {
    const m = /^\| `([a-z_:*]+)`(?:, `[a-z_*]+`)* \|\s*(\w*)\s*\|([^|]*)\|/.exec(line)
    if (!m || DEFAULTS.test(m[1]!)) continue
    const labels = m[3]!.includes("Istio's set") ? [...ISTIO_LABELS] : [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]!)
    rows.set(m[1]!, { type: m[2]!, labels: labels.sort() })
  }
  return rows
}

function registryRows(): Map<string, Row> {
  const m = new SidecarMetrics({ processMetrics: false })
  new TcpMetrics(m) // the connection-level families live on the same registry
  const rows = new Map<string, Row>()
  for (const x of m.registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames?: readonly string[] }[]) {
    rows.set(x.name, { type: x.type, labels: [...(x.labelNames ?? [])].sort() })
  }
  return rows
}

test('every registered metric is in the docs table with its type and labels', () => {
  const doc = docRows()
  const missing = [...registryRows()].filter(([name, r]) => JSON.stringify(doc.get(name)) !== JSON.stringify(r)).map(([n, r]) => `${n} ${r.type} [${r.labels.join(',')}]`)
  expect(missing).toEqual([])
})

test('every metric in the docs table is registered', () => {
  const reg = registryRows()
  expect([...docRows().keys()].filter((n) => !reg.has(n))).toEqual([])
})

test('the process and Node metrics row matches what prom-client registers', () => {
  const names = (new SidecarMetrics().registry.getMetricsAsArray() as unknown as { name: string }[]).map((x) => x.name).filter((n) => DEFAULTS.test(n))
  expect(names.length).toBeGreaterThan(5)
  expect(DOC).toContain('| `process_*`, `nodejs_*` |')
})
