import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PropagatorName } from '../../proxy/telemetry/index.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { metricValue, scrape } from '../helpers/metrics.js'
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js'

// Three hops, each with a sidecar on both ends (6 sidecar spans):
// client ─plain─▶ [client out] ─mTLS─▶ [frontend in] ▶ frontend app ▶ [frontend out] ─mTLS─▶
// [orders in] ▶ orders app ▶ [orders out] ─mTLS─▶ [payments in] ▶ payments app.
// Each app forwards the trace headers it got (as Istio asks of applications); every sidecar exports
// OTLP/HTTP protobuf to a real receiver, which decodes the bodies.

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'uber-trace-id', 'baggage', 'x-request-id']
const id = (sa: string): string => `spiffe://cluster.local/ns/shop/sa/${sa}`

const POLICIES = `
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }] }]
---
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-deny-refunds, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/refund"] } }] }]
`

interface App {
  server: http.Server
  port: number
  seen: http.IncomingHttpHeaders[]
}

/** An app that calls `next` (through its sidecar's outbound port) with the trace headers it received. */
async function startApp(name: string, next: () => { port: number; host: string } | null, o: { delayMs?: number } = {}): Promise<App> {
  const app: App = { server: http.createServer(), port: 0, seen: [] }
  app.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    app.seen.push(req.headers)
    const n = next()
    const reply = (status: number, body: string): void => void setTimeout(() => res.writeHead(status, { 'content-type': 'text/plain' }).end(body), o.delayMs ?? 0)
    if (!n) return reply(200, `${name} ok`)
    const headers: http.OutgoingHttpHeaders = { host: n.host }
    for (const h of TRACE_HEADERS) if (req.headers[h] !== undefined) headers[h] = req.headers[h]
    const path = req.url === '/refund' ? '/refund' : req.url === '/slow' ? '/slow' : '/next'
    const out = http.request({ host: '127.0.0.1', port: n.port, path, headers, agent: false }, (r) => {
      let b = ''
      r.on('data', (c: Buffer) => (b += c))
      r.on('end', () => reply(r.statusCode ?? 502, `${name} → ${b}`))
    })
    out.on('error', (e) => reply(502, e.message))
    out.end()
  })
  await new Promise<void>((r) => app.server.listen(0, '127.0.0.1', r))
  app.port = (app.server.address() as AddressInfo).port
  return app
}

interface Mesh {
  pki: TestPki
  receiver: OtlpReceiver
  apps: App[]
  client: TestSidecar
  frontend: TestSidecar
  orders: TestSidecar
  payments: TestSidecar
  flush(): Promise<void>
  close(): Promise<void>
}

async function startMesh(propagators: PropagatorName[], o: { sampling?: number; jaegerUi?: string } = {}): Promise<Mesh> {
  const pki = await createTestPki()
  const receiver = await startOtlpReceiver()
  const tracing = { endpoint: receiver.url, sampling: o.sampling ?? 1, propagators, ...(o.jaegerUi ? { jaegerUi: o.jaegerUi } : {}) }
  const telemetry = { tracing, metrics: { port: 0, bind: '127.0.0.1' } }
  const ports: { frontend?: number; orders?: number } = {}
  const payApp = await startApp('payments', () => null)
  const ordApp = await startApp('orders', () => ({ port: ports.orders!, host: 'payments.shop' }))
  const feApp = await startApp('frontend', () => ({ port: ports.frontend!, host: 'orders.shop' }))
  const payments = await startSidecar({ pki, serviceAccount: 'payments', app: `127.0.0.1:${payApp.port}`, policies: POLICIES, extra: { telemetry } })
  const cluster = (name: string, port: number) => ({ name: `${name}.shop`, hosts: [name, `${name}.shop`, `${name}.shop.svc.cluster.local`], endpoints: [`127.0.0.1:${port}`], identities: [id(name)] })
  const orders = await startSidecar({ pki, serviceAccount: 'orders', app: `127.0.0.1:${ordApp.port}`, policies: POLICIES, clusters: [cluster('payments', payments.inbound)], extra: { telemetry } })
  const frontend = await startSidecar({ pki, serviceAccount: 'frontend', app: `127.0.0.1:${feApp.port}`, clusters: [cluster('orders', orders.inbound), cluster('payments', payments.inbound)], extra: { telemetry } })
  const client = await startSidecar({ pki, serviceAccount: 'client', app: '127.0.0.1:1', clusters: [cluster('frontend', frontend.inbound)], extra: { telemetry } })
  ports.frontend = frontend.outbound
  ports.orders = orders.outbound
  const sidecars = [client, frontend, orders, payments]
  return {
    pki,
    receiver,
    apps: [feApp, ordApp, payApp],
    client,
    frontend,
    orders,
    payments,
    flush: async () => void (await Promise.all(sidecars.map((s) => s.sidecar.flushTraces()))),
    async close() {
      for (const s of sidecars) await s.close()
      for (const a of [feApp, ordApp, payApp]) {
        a.server.closeAllConnections()
        a.server.close()
      }
      await receiver.close()
    },
  }
}

const TID = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'

/** The six sidecar spans of one trace, ordered along the call chain: each must be the only child of the one before. */
function chain(spans: ReceivedSpan[], clientSpanId: string): ReceivedSpan[] {
  const ordered: ReceivedSpan[] = []
  let parent = clientSpanId
  for (let i = 0; i < 6; i++) {
    const next = spans.filter((s) => s.parentSpanId === parent)
    expect(next, `exactly one child of ${parent || '(root)'}`).toHaveLength(1)
    ordered.push(next[0]!)
    parent = next[0]!.spanId
  }
  return ordered
}

const CHAIN = ['client:CLIENT', 'frontend:SERVER', 'frontend:CLIENT', 'orders:SERVER', 'orders:CLIENT', 'payments:SERVER']
const shape = (spans: ReceivedSpan[]): string[] => spans.map((s) => `${String(s.resource['service.name'])}:${s.kind}`)

describe.each<{ name: string; propagators: PropagatorName[]; headers: Record<string, string> }>([
  { name: 'W3C traceparent', propagators: ['tracecontext'], headers: { traceparent: `00-${TID}-${CLIENT_SPAN}-01` } },
  { name: 'B3 single header', propagators: ['b3'], headers: { b3: `${TID}-${CLIENT_SPAN}-1` } },
  { name: 'B3 multi header', propagators: ['b3multi'], headers: { 'x-b3-traceid': TID, 'x-b3-spanid': CLIENT_SPAN, 'x-b3-sampled': '1' } },
  { name: 'Jaeger uber-trace-id', propagators: ['jaeger'], headers: { 'uber-trace-id': `${TID}:${CLIENT_SPAN}:0:1` } },
])('three hops, $name client', ({ propagators, headers }) => {
  let mesh: Mesh
  beforeAll(async () => {
    mesh = await startMesh(propagators)
  })
  afterAll(async () => {
    await mesh?.close()
  })

  test('one trace, six sidecar spans, each the parent of the next', async () => {
    const res = await plainRequest(mesh.client.outbound, { path: '/checkout?card=4111111111111111', headers: { host: 'frontend.shop', ...headers } })
    expect(res.status).toBe(200)
    expect(res.body).toBe('frontend → orders → payments ok')
    await mesh.flush()
    const spans = await mesh.receiver.waitForSpans(6, (s) => s.traceId === TID)
    expect(spans).toHaveLength(6)
    const ordered = chain(spans, CLIENT_SPAN)
    expect(shape(ordered)).toEqual(CHAIN)
    // The sidecar that received the request passed its own span on to the app, in the caller's format.
    const [, feIn, , orIn, , payIn] = ordered
    const sawParent = (h: http.IncomingHttpHeaders): string | undefined =>
      propagators[0] === 'tracecontext' ? h.traceparent?.toString().split('-')[2]
      : propagators[0] === 'b3' ? h.b3?.toString().split('-')[1]
      : propagators[0] === 'b3multi' ? h['x-b3-spanid']?.toString()
      : h['uber-trace-id']?.toString().split(':')[1]?.padStart(16, '0')
    expect(mesh.apps.map((a) => sawParent(a.seen.at(-1)!))).toEqual([feIn!.spanId, orIn!.spanId, payIn!.spanId])
    // The client span names where the call went and who had to answer it (secure naming).
    const feOut = ordered[2]!
    expect(feOut.attributes).toMatchObject({
      'remora.upstream.cluster': 'orders.shop',
      'remora.peer.principal': id('orders'),
      'url.full': 'http://orders.shop/next',
      'network.peer.address': '127.0.0.1',
      'network.peer.port': mesh.orders.inbound,
      'http.response.status_code': 200,
    })
    expect(orIn!.attributes['remora.peer.principal']).toBe(id('frontend'))
    expect(orIn!.attributes['remora.authz.decision']).toBe('ALLOW')
    // Never the query string.
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('4111111111111111')
  })
})

describe('what a span says about the mesh', () => {
  const UI = 'http://jaeger.example:16686'
  let mesh: Mesh
  let slowApp: http.Server
  let slow: TestSidecar
  beforeAll(async () => {
    mesh = await startMesh(['tracecontext'], { jaegerUi: UI })
    slowApp = http.createServer((_req, res) => void setTimeout(() => res.end('late'), 1500))
    await new Promise<void>((r) => slowApp.listen(0, '127.0.0.1', r))
    const appAddr = `127.0.0.1:${(slowApp.address() as AddressInfo).port}`
    slow = await startSidecar({
      pki: mesh.pki,
      serviceAccount: 'slow',
      app: appAddr,
      extra: { inbound: { port: 0, bind: '127.0.0.1', app: appAddr, timeout: '200ms' }, telemetry: { tracing: { endpoint: mesh.receiver.url, sampling: 1 }, metrics: { port: 0, bind: '127.0.0.1' } } },
    })
  })
  afterAll(async () => {
    await slow?.close()
    slowApp?.closeAllConnections()
    slowApp?.close()
    await mesh?.close()
  })

  const spanOf = async (sidecar: TestSidecar, traceId: string): Promise<ReceivedSpan> => {
    await sidecar.sidecar.flushTraces()
    const [s] = await mesh.receiver.waitForSpans(1, (x) => x.traceId === traceId && x.resource['service.name'] === sidecar.sidecar.config.workload.serviceAccount && x.kind === 'SERVER')
    return s!
  }

  test('a denied request: decision DENY, the policy, flag AZ, status ERROR; x-remora-trace to the mesh peer and in the access log', async () => {
    const tid = '0af7651916cd43dd8448eb211c80319c'
    const res = await mtlsRequest(mesh.payments.inbound, (await mesh.pki.issue(id('orders'))), mesh.pki.caPem, { path: '/refund', headers: { traceparent: `00-${tid}-b7ad6b7169203331-01` } })
    expect(res.refused === false && res.status).toBe(403)
    if (res.refused) return
    expect(res.headers['x-remora-trace']).toBe(`${UI}/trace/${tid}`)
    const s = await spanOf(mesh.payments, tid)
    expect(s.attributes['remora.authz.decision']).toBe('DENY')
    expect(s.attributes['remora.authz.policy']).toBe('shop/payments-deny-refunds')
    expect(s.attributes['remora.response_flags']).toBe('AZ')
    expect(s.attributes['remora.peer.principal']).toBe(id('orders'))
    expect(s.attributes['http.response.status_code']).toBe(403)
    expect(s.attributes['error.type']).toBe('REMORA_ERR_AUTHZ_DENIED')
    expect(s.status.code).toBe('ERROR')
    const line = mesh.payments.accessLog.find((l) => l.trace_id === tid)!
    expect(line.span_id).toBe(s.spanId)
    expect(line.trace_link).toBe(`${UI}/trace/${tid}`)
    expect(line.authz_decision).toBe('DENY')
  })

  test('its allow twin: decision ALLOW with the policy that allowed, status UNSET, no link', async () => {
    const tid = '1af7651916cd43dd8448eb211c80319c'
    const res = await mtlsRequest(mesh.orders.inbound, (await mesh.pki.issue(id('frontend'))), mesh.pki.caPem, { path: '/x', headers: { traceparent: `00-${tid}-b7ad6b7169203331-01` } })
    expect(res.refused === false && res.status).toBe(200)
    if (res.refused) return
    expect(res.headers['x-remora-trace']).toBeUndefined()
    const s = await spanOf(mesh.orders, tid)
    expect(s.attributes['remora.authz.decision']).toBe('ALLOW')
    expect(s.attributes['remora.authz.policy']).toBe('shop/orders-allow-frontend')
    expect(s.status.code).toBe('UNSET')
    expect(mesh.orders.accessLog.find((l) => l.trace_id === tid)!.trace_link).toBeUndefined()
  })

  test('a caller without a verified mesh identity never gets the link', async () => {
    const tid = '2af7651916cd43dd8448eb211c80319c'
    const res = await plainRequest(mesh.frontend.inbound, { path: '/a%2Fb', headers: { host: 'frontend.shop', traceparent: `00-${tid}-b7ad6b7169203331-01` } })
    expect(res.status).toBe(400)
    expect(res.headers['x-remora-trace']).toBeUndefined()
    const s = await spanOf(mesh.frontend, tid)
    expect(s.status.code).toBe('ERROR')
    expect(s.attributes['remora.response_flags']).toBe('DPE')
  })

  test('an upstream timeout: 504, flag UT, status ERROR', async () => {
    const tid = '3af7651916cd43dd8448eb211c80319c'
    const res = await mtlsRequest(slow.inbound, (await mesh.pki.issue(id('orders'))), mesh.pki.caPem, { path: '/slow', headers: { traceparent: `00-${tid}-b7ad6b7169203331-01` } })
    expect(res.refused === false && res.status).toBe(504)
    const s = await spanOf(slow, tid)
    expect(s.attributes['remora.response_flags']).toBe('UT')
    expect(s.attributes['http.response.status_code']).toBe(504)
    expect(s.attributes['error.type']).toBe('REMORA_ERR_UPSTREAM_TIMEOUT')
    expect(s.status.code).toBe('ERROR')
  })

  test('an unsampled caller: no span from any sidecar, but ids in the access log and flags passed on', async () => {
    const tid = '5af7651916cd43dd8448eb211c80319c'
    const res = await plainRequest(mesh.client.outbound, { path: '/', headers: { host: 'frontend.shop', traceparent: `00-${tid}-b7ad6b7169203331-00` } })
    expect(res.status).toBe(200)
    await mesh.flush()
    expect(mesh.receiver.spans.filter((s) => s.traceId === tid)).toEqual([])
    expect(mesh.payments.accessLog.some((l) => l.trace_id === tid)).toBe(true)
    expect(String(mesh.apps[2]!.seen.at(-1)!.traceparent)).toMatch(new RegExp(`^00-${tid}-[0-9a-f]{16}-00$`))
  })

  test('spans carry no secret: authorization header, query string and token never appear', async () => {
    const tid = '6af7651916cd43dd8448eb211c80319c'
    await plainRequest(mesh.client.outbound, { path: '/?access_token=s3cr3t-q', headers: { host: 'frontend.shop', authorization: 'Bearer s3cr3t-h', traceparent: `00-${tid}-b7ad6b7169203331-01` } })
    await mesh.flush()
    const spans = await mesh.receiver.waitForSpans(6, (s) => s.traceId === tid)
    const all = JSON.stringify(spans.map((s) => ({ a: s.attributes, r: s.resource, n: s.name })))
    expect(all).not.toContain('s3cr3t')
  })
})

describe('the collector down or slow never touches requests', () => {
  test('collector down: every request answers, fast; the spans are dropped and counted', async () => {
    const pki = await createTestPki()
    const app = http.createServer((_req, res) => res.end('ok'))
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
    const dead = http.createServer()
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
    const deadPort = (dead.address() as AddressInfo).port
    await new Promise<void>((r) => dead.close(() => r()))
    const sc = await startSidecar({
      pki,
      serviceAccount: 'lonely',
      app: `127.0.0.1:${(app.address() as AddressInfo).port}`,
      extra: { telemetry: { tracing: { endpoint: `http://127.0.0.1:${deadPort}`, sampling: 1 }, metrics: { port: 0, bind: '127.0.0.1' } } },
    })
    try {
      const times: number[] = []
      for (let i = 0; i < 40; i++) {
        const t0 = performance.now()
        const r = await plainRequest(sc.inbound, { headers: { host: 'lonely.shop' } })
        times.push(performance.now() - t0)
        expect(r.status).toBe(200)
      }
      await sc.sidecar.flushTraces()
      const { families } = await scrape(sc.admin)
      expect(metricValue(families, 'remora_tracing_spans_dropped_total', { reason: 'export_failed' })).toBe(40)
      expect(metricValue(families, 'remora_tracing_spans_exported_total')).toBe(0)
      expect(Math.max(...times)).toBeLessThan(1000) // never the exporter's 5 s timeout
      expect(sc.logger.lines.filter((l) => (l.obj as { event?: string }).event === 'trace_export_failed')).toHaveLength(1)
    } finally {
      await sc.close()
      app.close()
    }
  })

  test('collector slow: requests stay fast, the bounded queue drops the overflow and counts it', async () => {
    const pki = await createTestPki()
    const receiver = await startOtlpReceiver({ delayMs: 3000 })
    const app = http.createServer((_req, res) => res.end('ok'))
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
    const sc = await startSidecar({
      pki,
      serviceAccount: 'patient',
      app: `127.0.0.1:${(app.address() as AddressInfo).port}`,
      extra: { telemetry: { tracing: { endpoint: receiver.url, sampling: 1, maxQueueSize: 5 }, metrics: { port: 0, bind: '127.0.0.1' } } },
    })
    try {
      void sc.sidecar.flushTraces() // starts an export that the collector holds for 3 s
      const times: number[] = []
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now()
        const r = await plainRequest(sc.inbound, { headers: { host: 'patient.shop' } })
        times.push(performance.now() - t0)
        expect(r.status).toBe(200)
      }
      expect(Math.max(...times)).toBeLessThan(1000)
      const { families } = await scrape(sc.admin)
      expect(metricValue(families, 'remora_tracing_spans_dropped_total', { reason: 'queue_full' })).toBeGreaterThanOrEqual(20)
    } finally {
      await sc.close()
      app.close()
      await receiver.close()
    }
  })
})
