import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { plainRequest, policiesFromYaml, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { leBound, metricValue, samples, scrape } from '../helpers/metrics.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { ISTIO_DURATION_BUCKETS } from '../../proxy/telemetry/index.js'

// orders app ─plain─▶ [orders out] ─mTLS─▶ [payments in] ─▶ payments app; payments allows orders on
// /charge only. Known traffic, then both sidecars' scrape endpoints parsed by a Prometheus parser.
const PAY = 'spiffe://cluster.local/ns/shop/sa/payments'
const ORD = 'spiffe://cluster.local/ns/shop/sa/orders'
const POLICY = `
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }], to: [{ operation: { paths: ["/charge"] } }] }]
`
let pki: TestPki
let app: Upstream
let payments: TestSidecar
let orders: TestSidecar

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream((_req, res) => res.end('charged'))
  payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address, policies: POLICY })
  orders = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: '127.0.0.1:1',
    clusters: [{ name: 'payments.shop', hosts: ['payments', 'payments.shop', 'payments.shop.svc.cluster.local'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: [PAY] }],
  })
  for (let i = 0; i < 3; i++) expect((await plainRequest(orders.outbound, { method: 'POST', path: '/charge?card=4111', headers: { host: 'payments.shop' }, body: 'x'.repeat(20) })).status).toBe(200)
  expect((await plainRequest(orders.outbound, { path: '/refund', headers: { host: 'payments.shop' } })).status).toBe(403)
  expect((await plainRequest(orders.outbound, { path: '/', headers: { host: 'nowhere.shop' } })).status).toBe(404)
})

afterAll(async () => {
  await orders?.close()
  await payments?.close()
  await app?.close()
})

const INBOUND = {
  reporter: 'destination',
  source_workload: 'orders',
  source_workload_namespace: 'shop',
  source_principal: ORD,
  source_app: 'orders',
  destination_workload: 'payments',
  destination_workload_namespace: 'shop',
  destination_principal: PAY,
  destination_service: 'payments.shop.svc.cluster.local',
  destination_service_name: 'payments',
  request_protocol: 'http',
  connection_security_policy: 'mutual_tls',
}

describe('Istio request metrics', () => {
  test('inbound (reporter=destination): the full Istio label set, per status and flag', async () => {
    const { families, contentType } = await scrape(payments.admin)
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(samples(families, 'istio_requests_total', { ...INBOUND, response_code: '200', response_flags: '-' })[0]?.value).toBe('3')
    expect(samples(families, 'istio_requests_total', { ...INBOUND, response_code: '403', response_flags: 'AZ' })[0]?.value).toBe('1')
    expect(Object.keys(samples(families, "istio_requests_total")[0]!.labels).sort()).toEqual(
      ['connection_security_policy', 'destination_principal', 'destination_service', 'destination_service_name', 'destination_workload', 'destination_workload_namespace', 'reporter', 'request_protocol', 'response_code', 'response_flags', 'source_app', 'source_principal', 'source_workload', 'source_workload_namespace'],
    )
  })

  test('outbound (reporter=source): destination from the cluster and its secure-naming identity; NR for an unknown host', async () => {
    const { families } = await scrape(orders.admin)
    const out = { reporter: 'source', source_workload: 'orders', source_principal: ORD, destination_workload: 'payments', destination_principal: PAY, destination_service: 'payments.shop.svc.cluster.local', destination_service_name: 'payments' }
    expect(metricValue(families, 'istio_requests_total', { ...out, response_code: '200', connection_security_policy: 'mutual_tls' })).toBe(3)
    expect(metricValue(families, 'istio_requests_total', { ...out, response_code: '403', response_flags: '-' })).toBe(1)
    expect(metricValue(families, 'istio_requests_total', { reporter: 'source', destination_service: 'unknown', response_code: '404', response_flags: 'NR' })).toBe(1)
  })

  test('duration and sizes are histograms with Istio buckets; byte counts are the bodies', async () => {
    const { families } = await scrape(payments.admin)
    const d = samples(families, 'istio_request_duration_milliseconds', { ...INBOUND, response_code: '200' })[0]!
    expect(d.count).toBe('3')
    expect(Object.keys(d.buckets!).map(leBound).sort((a, b) => a - b)).toEqual([...ISTIO_DURATION_BUCKETS, Infinity])
    const req = samples(families, 'istio_request_bytes', { ...INBOUND, response_code: '200' })[0]!
    expect(Number(req.sum)).toBe(60)
    const resp = samples(families, 'istio_response_bytes', { ...INBOUND, response_code: '200' })[0]!
    expect(Number(resp.sum)).toBe(3 * 'charged'.length)
    expect(families.find((f) => f.name === 'istio_request_duration_milliseconds')!.type).toBe('HISTOGRAM')
  })

  test('labels are bounded: no path, query or address in any label value', async () => {
    for (const s of [payments, orders]) {
      const { families } = await scrape(s.admin)
      const values = families.flatMap((f) => f.metrics.flatMap((m) => Object.values(m.labels ?? {})))
      expect(values.filter((v) => /\/charge|\/refund|4111|127\.0\.0\.1/.test(v))).toEqual([])
    }
  })
})

describe('remora_* metrics', () => {
  test('authz decisions by action, deciding policy and mode', async () => {
    const { families } = await scrape(payments.admin)
    expect(metricValue(families, 'remora_authz_decisions_total', { action: 'ALLOW', policy: 'shop/payments-allow-orders', mode: 'enforce' })).toBe(3)
    expect(metricValue(families, 'remora_authz_decisions_total', { action: 'DENY', policy: '-', mode: 'enforce' })).toBe(1)
  })

  test('config version info follows a swap; a rejected update is counted', async () => {
    let { families } = await scrape(payments.admin)
    expect(samples(families, 'remora_config_version_info')[0]?.labels?.version).toBe(payments.sidecar.version)
    const v = payments.sidecar.applyPolicies(policiesFromYaml(POLICY.replace('/charge', '/pay')))
    payments.sidecar.noteConfigRejected()
    ;({ families } = await scrape(payments.admin))
    expect(samples(families, 'remora_config_version_info').map((m) => m.labels?.version)).toEqual([v])
    expect(metricValue(families, 'remora_config_rejected_total')).toBe(1)
    payments.sidecar.applyPolicies(policiesFromYaml(POLICY))
  })

  test('certificate expiry, open upstream connections by cluster, Node process metrics', async () => {
    const { families } = await scrape(orders.admin)
    const expiry = metricValue(families, 'remora_cert_expiry_seconds')
    expect(expiry).toBeGreaterThan(3600)
    expect(expiry).toBeLessThan(366 * 86400)
    expect(metricValue(families, 'remora_upstream_cx_active', { cluster: 'payments.shop' })).toBeGreaterThanOrEqual(1)
    expect(families.some((f) => f.name === 'process_cpu_user_seconds_total')).toBe(true)
    expect(families.some((f) => f.name === 'nodejs_heap_size_used_bytes')).toBe(true)
  })
})

describe(':15090', () => {
  test('/stats/prometheus serves the same registry; nothing else is served there', async () => {
    expect(payments.sidecar.ports.metrics).toBeGreaterThan(0)
    const { families } = await scrape(payments.sidecar.ports.metrics, '/stats/prometheus')
    expect(metricValue(families, 'istio_requests_total', { ...INBOUND, response_code: '200' })).toBe(3)
    await expect(scrape(payments.sidecar.ports.metrics, '/config_dump')).rejects.toThrow(/HTTP 404/)
  })
})
