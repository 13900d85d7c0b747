// The traffic record end to end: a control plane and three sidecars that bootstrapped from it;
// frontend calls orders (allowed by a rule, and denied for a method) and payments (denied); the
// sidecars report what their inbound side served, and GET /v1/traffic answers with the edges, their
// counts, decision, policy and rule, latency and mTLS, merged per destination workload. A sidecar
// cannot report for another workload (403), and the record holds path templates, never a raw path
// or its query.
import https from 'node:https'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { TrafficReportSchema, type TrafficReport } from '../../proxy/snapshot/index.js'
import { createKeyAndCsr } from '../../proxy/xds/index.js'
import { postJson, startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { plainRequest, until } from '../helpers/mesh.js'
import { metricValue, parsePrometheusText } from '../helpers/metrics.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend'
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders'
const PAYMENTS = 'spiffe://cluster.local/ns/shop/sa/payments'

const POLICIES = `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/orders/*"] } }]
---
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-from-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }] }]
`

interface ObservedEdge {
  destination: { principal: string; namespace: string; workload: string }
  source: string
  method: string
  path: string
  port: number
  protocol: string
  decision: 'ALLOW' | 'DENY'
  policy: string | null
  rule: number | null
  mtls: boolean
  count: number
  errors: number
  firstSeen: number
  lastSeen: number
  latency: number[]
  denials: { at: number; reason: string }[]
  traceId: string | null
}
interface TrafficReply {
  edges: ObservedEdge[]
  window: { from: number; to: number }
  dropped: number
}

let cp: TestControlPlane
let ordersApp: Upstream
let paymentsApp: Upstream
let orders: MeshSidecar
let payments: MeshSidecar
let frontend: MeshSidecar

/** The admin API (bearer token) or any route with an optional client certificate. */
function api(method: string, path: string, o: { body?: unknown; token?: string | null; cert?: string; key?: string } = {}): Promise<{ status: number; text: string; json: unknown }> {
  const [host, port] = [cp.address.slice(0, cp.address.lastIndexOf(':')), Number(cp.address.slice(cp.address.lastIndexOf(':') + 1))]
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body)
  const token = o.token === undefined ? cp.adminToken : o.token
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port,
        method,
        path,
        agent: false,
        ca: cp.cp.caPem,
        cert: o.cert,
        key: o.key,
        checkServerIdentity: () => undefined,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          let json: unknown = null
          try {
            json = JSON.parse(text)
          } catch {
            /* metrics */
          }
          resolve({ status: res.statusCode ?? 0, text, json })
        })
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

const traffic = async (query: string): Promise<TrafficReply> => {
  const r = await api('GET', `/v1/traffic?${query}`)
  expect(r.status, r.text).toBe(200)
  return r.json as TrafficReply
}

/** A workload certificate for `sa`, issued by the control plane from a CSR (as a sidecar bootstraps). */
async function workloadCert(sa: string): Promise<{ cert: string; key: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr(`spiffe://cluster.local/ns/shop/sa/${sa}`)
  const r = await postJson(cp.address, '/v1/bootstrap', { token: await cp.token(sa), csr: csrPem }, { caPem: cp.cp.caPem })
  expect(r.status).toBe(200)
  return { cert: r.json.certPem as string, key: keyPem }
}

const report = (principal: string, workload: string): TrafficReport => ({
  destination: { principal, namespace: 'shop', workload },
  windowStart: Date.now() - 1000,
  windowEnd: Date.now(),
  edges: [
    { source: FRONTEND, method: 'GET', path: '/forged', port: 8080, protocol: 'http', decision: 'ALLOW', policy: null, rule: null, mtls: true, count: 1, errors: 0, firstSeen: Date.now(), lastSeen: Date.now(), latency: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], denials: [], traceId: null },
  ],
  dropped: 0,
})

const call = (host: string, path: string, method = 'GET') => plainRequest(frontend.outbound, { method, path, headers: { host } })

beforeAll(async () => {
  cp = await startTestControlPlane()
  ordersApp = await startUpstream()
  paymentsApp = await startUpstream()
  // Loopback-only metrics; payments reports on its own timer, the others when the test asks.
  const telemetry = (interval: string) => ({ telemetry: { metrics: { port: 0, bind: '127.0.0.1' }, trafficReport: { interval } } })
  const mk = async (sa: string, app: string, interval: string) => startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: sa, app, token: await cp.token(sa), extra: telemetry(interval) })
  orders = await mk('orders', ordersApp.address, '1h')
  payments = await mk('payments', paymentsApp.address, '200ms')
  frontend = await mk('frontend', '127.0.0.1:1', '1h')
  const applied = await api('POST', '/v1/apply', { body: { sources: [{ source: 'traffic-record.yaml', text: POLICIES }] } })
  expect(applied.status, applied.text).toBe(200)
  const version = (applied.json as { version: string }).version
  await until(
    () => [orders, payments, frontend].every((s) => s.client.lastGoodVersion === version) && ['orders.shop', 'payments.shop'].every((c) => (frontend.sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((x) => x.name === c)),
    15_000,
    'policies and clusters everywhere',
  )
}, 60_000)

afterAll(async () => {
  for (const s of [frontend, payments, orders]) await s?.close()
  await cp?.close()
  await ordersApp?.close()
  await paymentsApp?.close()
})

describe('traffic record: sidecars report, the control plane merges, GET /v1/traffic answers', () => {
  test('the edges a destination served: counts, decision, policy and rule, latency, mTLS; templates, never raw paths or queries', async () => {
    for (const p of ['/orders/12345?token=abc', '/orders/67890', '/orders/4242']) expect((await call('orders.shop', p)).status).toBe(200)
    expect((await call('orders.shop', '/orders/1', 'POST')).status).toBe(403)
    expect(ordersApp.hits).toBe(3)
    // One report each from orders (asked now) and payments (its 200ms timer, below): two reporters, one query.
    expect(await orders.client.reportTraffic()).toEqual({ outcome: 'sent', edges: 2, status: 200 })

    const r = await traffic('namespace=shop&workload=orders&since=1h')
    expect(r.window.to - r.window.from).toBe(3_600_000)
    expect(r.dropped).toBe(0)
    expect(r.edges).toHaveLength(2)
    const allowed = r.edges.find((e) => e.decision === 'ALLOW')!
    expect(allowed).toMatchObject({
      destination: { principal: ORDERS, namespace: 'shop', workload: 'orders' },
      source: FRONTEND,
      method: 'GET',
      path: '/orders/{id}',
      port: ordersApp.port,
      protocol: 'http',
      policy: 'shop/allow-frontend',
      rule: 0,
      mtls: true,
      count: 3,
      errors: 0,
      denials: [],
    })
    expect(allowed.latency.reduce((a, b) => a + b, 0)).toBe(3)
    expect(allowed.lastSeen).toBeGreaterThanOrEqual(allowed.firstSeen)
    const denied = r.edges.find((e) => e.decision === 'DENY')!
    expect(denied).toMatchObject({ source: FRONTEND, method: 'POST', path: '/orders/{id}', policy: null, rule: null, count: 1 })
    expect(denied.denials[0]!.reason).toMatch(/no ALLOW policy matched/)

    // Nothing raw in the answer nor in the store.
    const stored = [...(await cp.store.list('traffic/')).values()].join('\n')
    for (const text of [JSON.stringify(r), stored]) {
      for (const raw of ['12345', '67890', '4242', 'token', '?']) expect(text).not.toContain(raw)
    }
  })

  test('a denied caller shows as a DENY edge on its destination, reported on the sidecar\'s own interval', async () => {
    const reported = payments.client.next<{ outcome: string }>('traffic', 10_000)
    expect((await call('payments.shop', '/charge')).status).toBe(403)
    expect(paymentsApp.hits).toBe(0)
    expect((await reported).outcome).toBe('sent')
    const r = await traffic('namespace=shop&workload=payments')
    expect(r.edges).toEqual([expect.objectContaining({ destination: { principal: PAYMENTS, namespace: 'shop', workload: 'payments' }, source: FRONTEND, method: 'GET', path: '/charge', decision: 'DENY', count: 1, mtls: true })])
  })

  test('the namespace query merges every destination; deltas are added, not replaced', async () => {
    expect((await call('orders.shop', '/orders/777')).status).toBe(200)
    await orders.client.reportTraffic()
    const r = await traffic('namespace=shop')
    expect(r.edges.map((e) => `${e.destination.workload} ${e.decision} ${e.method} ${e.path}`).sort()).toEqual(['orders ALLOW GET /orders/{id}', 'orders DENY POST /orders/{id}', 'payments DENY GET /charge'])
    expect(r.edges.find((e) => e.destination.workload === 'orders' && e.decision === 'ALLOW')!.count).toBe(4)
    // frontend served nothing inbound: it reported nothing and has no edge as a destination.
    expect(await frontend.client.reportTraffic()).toBeNull()
  })

  test('a report for another workload is refused 403 and stored nowhere; the same certificate reporting for itself is accepted', async () => {
    const { cert, key } = await workloadCert('orders')
    const forged = await api('POST', '/v1/traffic', { token: null, cert, key, body: report(PAYMENTS, 'payments') })
    expect(forged.status).toBe(403)
    expect((forged.json as { error: { code: string } }).error.code).toBe('REMORA_ERR_CP_TRAFFIC_FOREIGN')
    const own = await api('POST', '/v1/traffic', { token: null, cert, key, body: report(ORDERS, 'orders') })
    expect(own.status, own.text).toBe(200)
    const paymentsEdges = (await traffic('namespace=shop&workload=payments')).edges
    expect(paymentsEdges.map((e) => e.path)).toEqual(['/charge'])
    expect((await traffic('namespace=shop&workload=orders')).edges.map((e) => e.path)).toContain('/forged')
    const metrics = parsePrometheusText((await api('GET', '/metrics')).text)
    expect(metricValue(metrics, 'remora_cp_traffic_reports_total', { result: 'refused' })).toBeGreaterThanOrEqual(1)
    expect(metricValue(metrics, 'remora_cp_traffic_reports_total', { result: 'accepted' })).toBeGreaterThanOrEqual(3)
  })

  test('a report without a workload certificate is 401; one off the schema is 400', async () => {
    const anonymous = await api('POST', '/v1/traffic', { token: null, body: report(ORDERS, 'orders') })
    expect(anonymous.status).toBe(401)
    const { cert, key } = await workloadCert('orders')
    const extra = await api('POST', '/v1/traffic', { token: null, cert, key, body: { ...report(ORDERS, 'orders'), edges: [{ ...report(ORDERS, 'orders').edges[0]!, rawPath: '/orders/12345' }] } })
    expect(extra.status).toBe(400)
    expect(TrafficReportSchema.safeParse(report(ORDERS, 'orders')).success).toBe(true)
  })

  test('the query needs the admin token and checks its parameters', async () => {
    expect((await api('GET', '/v1/traffic', { token: null })).status).toBe(401)
    expect((await api('GET', '/v1/traffic?since=forever')).status).toBe(400)
    expect((await api('GET', '/v1/traffic?namespace=Not_A_Label')).status).toBe(400)
    const all = await traffic('since=7d')
    expect(all.window.to - all.window.from).toBe(24 * 3_600_000) // capped at the retention window
  })
})
