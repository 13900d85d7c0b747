// gRPC end to end with @grpc/grpc-js on both ends (client and server, h2c) through a real sidecar
// pair: orders' outbound → ALPN h2 over mTLS → payments' inbound → the server. Unary and server
// streaming; a non-OK status visible as grpc_response_status on /metrics; Istio's message counters;
// an AuthorizationPolicy on gRPC method paths that allows one method and denies another (the denial
// arrives as Envoy sends it: PERMISSION_DENIED, "RBAC: access denied", and the server never sees
// it); one access-log line and one span per RPC on each side.
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { metricValue, samples, scrape } from '../helpers/metrics.js'
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'

const bytes = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b }
/** A service without a .proto: raw bytes in and out, which is all the mesh sees anyway. */
const ORDERS: grpc.ServiceDefinition = {
  Get: { path: '/shop.Orders/Get', requestStream: false, responseStream: false, ...bytes },
  List: { path: '/shop.Orders/List', requestStream: false, responseStream: true, ...bytes },
  Drop: { path: '/shop.Orders/Drop', requestStream: false, responseStream: false, ...bytes },
}

const POLICY = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-read-only, namespace: shop }
spec:
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }]
      to: [{ operation: { paths: ["/shop.Orders/Get", "/shop.Orders/List"] } }]
`

type Unary = (req: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void
type Stream = (req: Buffer, md?: grpc.Metadata, o?: grpc.CallOptions) => grpc.ClientReadableStream<Buffer>
interface OrdersClient extends grpc.Client {
  Get: Unary
  Drop: Unary
  List: Stream
}

let pki: TestPki
let server: grpc.Server
let receiver: OtlpReceiver
let payments: TestSidecar
let orders: TestSidecar
let client: OrdersClient
const calls = { Get: 0, List: 0, Drop: 0 }

function unary(method: 'Get' | 'Drop', req: string): Promise<{ code: number; details: string; reply: string }> {
  return new Promise((resolve) => {
    client[method](Buffer.from(req), new grpc.Metadata(), { deadline: new Date(Date.now() + 5000) }, (err, res) => {
      resolve(err ? { code: err.code, details: err.details, reply: '' } : { code: 0, details: '', reply: res!.toString() })
    })
  })
}

function list(req: string): Promise<{ code: number; replies: string[] }> {
  return new Promise((resolve) => {
    const replies: string[] = []
    const call = client.List(Buffer.from(req), new grpc.Metadata(), { deadline: new Date(Date.now() + 5000) })
    call.on('data', (b: Buffer) => replies.push(b.toString()))
    call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, replies }))
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) resolve({ code: 0, replies })
    })
  })
}

beforeAll(async () => {
  pki = await createTestPki()
  receiver = await startOtlpReceiver()
  server = new grpc.Server()
  server.addService(ORDERS, {
    Get: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.Get++
      const id = call.request.toString()
      if (id === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: `no order ${id}` })
      cb(null, Buffer.from(`order ${id}`))
    },
    List: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      calls.List++
      for (let i = 1; i <= 3; i++) call.write(Buffer.from(`${call.request.toString()} #${i}`))
      call.end()
    },
    Drop: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.Drop++
      cb(null, Buffer.from('dropped'))
    },
  })
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))))
  const telemetry = { tracing: { endpoint: receiver.url, sampling: 1 }, metrics: { port: 0, bind: '127.0.0.1' } }
  payments = await startSidecar({ pki, serviceAccount: 'payments', app: `127.0.0.1:${appPort}`, policies: POLICY, extra: { telemetry } })
  orders = await startSidecar({ pki, serviceAccount: 'orders', app: '127.0.0.1:1', extra: { telemetry }, clusters: [{ name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: [payments.spiffeId] }] })
  const Client = grpc.makeGenericClientConstructor(ORDERS, 'Orders')
  // The app dials its sidecar's outbound port in h2c; the authority names the service, as a Kubernetes DNS name would.
  client = new Client(`127.0.0.1:${orders.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'payments' }) as unknown as OrdersClient
})

afterAll(async () => {
  client?.close()
  await orders?.close()
  await payments?.close()
  await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()))
  await receiver?.close()
})

describe('gRPC through the mesh (grpc-js client and server)', () => {
  test('unary: the reply comes back OK', async () => {
    expect(await unary('Get', '42')).toEqual({ code: 0, details: '', reply: 'order 42' })
  })

  test('server streaming: every message arrives, then OK', async () => {
    expect(await list('recent')).toEqual({ code: 0, replies: ['recent #1', 'recent #2', 'recent #3'] })
  })

  test('a non-OK status reaches the client, and is grpc_response_status on both sides (request_protocol grpc, HTTP 200)', async () => {
    const r = await unary('Get', 'missing')
    expect([r.code, r.details]).toEqual([grpc.status.NOT_FOUND, 'no order missing'])
    const labels = { request_protocol: 'grpc', grpc_response_status: '5', response_code: '200' }
    await until(() => payments.accessLog.some((e) => e.path === '/shop.Orders/Get' && e.response_code === 200), 3000, 'the call logged')
    expect(metricValue((await scrape(payments.admin)).families, 'istio_requests_total', { reporter: 'destination', source_principal: orders.spiffeId, ...labels })).toBe(1)
    expect(metricValue((await scrape(orders.admin)).families, 'istio_requests_total', { reporter: 'source', destination_principal: payments.spiffeId, ...labels })).toBe(1)
    const ok = samples((await scrape(payments.admin)).families, 'istio_requests_total', { request_protocol: 'grpc', grpc_response_status: '0' })
    expect(ok.reduce((n, s) => n + Number(s.value), 0)).toBe(2) // Get 42 and List
  })

  test("Istio's message counters: the streaming call's three replies and every request message", async () => {
    const f = (await scrape(payments.admin)).families
    // Get 42, List, Get missing so far: 3 request messages, 1 + 3 + 0 response messages.
    expect(metricValue(f, 'istio_request_messages_total', { reporter: 'destination', source_principal: orders.spiffeId })).toBe(3)
    expect(metricValue(f, 'istio_response_messages_total', { reporter: 'destination', source_principal: orders.spiffeId })).toBe(4)
    expect(metricValue((await scrape(orders.admin)).families, 'istio_response_messages_total', { reporter: 'source', destination_principal: payments.spiffeId })).toBe(4)
  })

  test('authorization on method paths: Drop is not in the ALLOW rule: PERMISSION_DENIED "RBAC: access denied", the server never runs it', async () => {
    const r = await unary('Drop', 'all')
    expect([r.code, r.details]).toEqual([grpc.status.PERMISSION_DENIED, 'RBAC: access denied'])
    expect(calls.Drop).toBe(0)
    await until(() => payments.accessLog.some((e) => e.path === '/shop.Orders/Drop'), 3000, 'the denial logged')
    const line = payments.accessLog.find((e) => e.path === '/shop.Orders/Drop')!
    // Envoy's gRPC local reply: HTTP 200 on the wire, the denial in the flag and the gRPC status.
    expect([line.response_code, line.response_flags, line.error_code, line.authz_decision]).toEqual([200, 'AZ', 'REMORA_ERR_AUTHZ_DENIED', 'DENY'])
    const f = (await scrape(payments.admin)).families
    expect(metricValue(f, 'istio_requests_total', { reporter: 'destination', grpc_response_status: '7', response_flags: 'AZ' })).toBe(1)
    expect(metricValue(f, 'remora_authz_decisions_total', { action: 'DENY' })).toBe(1)
  })

  test('its allow twin: Get, in the rule, reaches the server', async () => {
    const before = calls.Get
    expect((await unary('Get', '7')).code).toBe(grpc.status.OK)
    expect(calls.Get).toBe(before + 1)
  })

  test('one access-log line per RPC on each side, with the method path', async () => {
    const paths = (sc: TestSidecar) => sc.accessLog.map((e) => e.path)
    await until(() => paths(orders).length >= 5 && paths(payments).length >= 5, 3000, 'every RPC logged')
    const expected = ['/shop.Orders/Get', '/shop.Orders/List', '/shop.Orders/Get', '/shop.Orders/Drop', '/shop.Orders/Get']
    expect(paths(payments)).toEqual(expected)
    expect(paths(orders)).toEqual(expected)
    expect(payments.accessLog.every((e) => e.protocol === 'HTTP/2.0' && e.downstream_peer_principal === orders.spiffeId)).toBe(true)
  })

  test('one span per RPC on each side (client span on orders, server span on payments), in one trace per call', async () => {
    await Promise.all([orders.sidecar.flushTraces(), payments.sidecar.flushTraces()])
    const spans = await receiver.waitForSpans(10, (s) => String(s.attributes['url.path'] ?? s.attributes['http.target'] ?? s.name).includes('/shop.Orders/'))
    const rpc = spans.filter((s) => String(s.attributes['url.path'] ?? s.attributes['http.target'] ?? s.name).includes('/shop.Orders/'))
    const client = rpc.filter((s) => s.kind === 'CLIENT')
    const serverSpans = rpc.filter((s) => s.kind === 'SERVER')
    expect([client.length, serverSpans.length]).toEqual([5, 5])
    for (const s of serverSpans) expect(client.some((c) => c.traceId === s.traceId && c.spanId === s.parentSpanId)).toBe(true)
  })
})
