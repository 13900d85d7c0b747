// sidecar.yaml's telemetry.trafficReport: on by default with a control plane (every 10s), off
// without one unless asked; the interval is bounded; unknown fields are errors.
import { describe, expect, test } from 'vitest'
import { validateSidecarConfig, type ConfigIssue, type SidecarConfig } from '../../../proxy/config/index.js'
import { trafficReportSettings } from '../../../proxy/traffic/index.js'

const STATIC = { apiVersion: 'remora.dev/v1', kind: 'SidecarConfig', workload: { namespace: 'shop', serviceAccount: 'orders' }, identity: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' } }
const MESHED = { apiVersion: 'remora.dev/v1', kind: 'SidecarConfig', workload: { namespace: 'shop', serviceAccount: 'orders' }, controlPlane: { addresses: ['127.0.0.1:15010'], caFile: 'ca.pem', stateDir: 'state' } }

function parse(base: object, trafficReport?: unknown): SidecarConfig {
  const r = validateSidecarConfig(trafficReport === undefined ? base : { ...base, telemetry: { trafficReport } })
  if (!r.ok) throw new Error(JSON.stringify(r.issues))
  return r.config
}

function issues(trafficReport: unknown): ConfigIssue[] {
  const r = validateSidecarConfig({ ...MESHED, telemetry: { trafficReport } })
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(trafficReport)}`)
  return r.issues
}

describe('telemetry.trafficReport', () => {
  test('with a control plane: on, every 10s, by default', () => {
    expect(trafficReportSettings(parse(MESHED))).toEqual({ enabled: true, intervalMs: 10_000 })
  })

  test('without a control plane: off by default; enabled: true records (nowhere to report)', () => {
    expect(trafficReportSettings(parse(STATIC))).toEqual({ enabled: false, intervalMs: 10_000 })
    expect(trafficReportSettings(parse(STATIC, { enabled: true })).enabled).toBe(true)
  })

  test('enabled: false turns it off with a control plane; the interval is taken', () => {
    expect(trafficReportSettings(parse(MESHED, { enabled: false, interval: '30s' }))).toEqual({ enabled: false, intervalMs: 30_000 })
  })

  test('an interval outside 100ms..1h or not a duration is refused, with its path', () => {
    for (const interval of ['50ms', '2h', 'soon', 10]) expect(issues({ interval })).toEqual([expect.objectContaining({ path: 'telemetry.trafficReport.interval' })])
  })

  test('an unknown field is refused', () => {
    expect(issues({ every: '10s' })).toEqual([{ path: 'telemetry.trafficReport.every', message: 'unknown field' }])
  })
})
