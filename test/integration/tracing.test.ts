import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PropagatorName } from '../../proxy/telemetry/index.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { plainRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
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
    // Never the query string.
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('4111111111111111')
  })
})
