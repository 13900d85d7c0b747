// HTTP/2 end to end through a real sidecar pair: an h2c caller (prior knowledge) → orders' outbound
// listener → ALPN h2 over mTLS → payments' inbound listener → h2c to the app. One TCP connection
// between the sidecars carries concurrent requests; an HTTP/1.1 caller still works on the same pair
// (the app speaks both, as real apps behind a mesh do); trailers arrive; each request has its
// access-log line and its Istio metrics on both sides.
import http from 'node:http'
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { plainRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { samples, scrape } from '../helpers/metrics.js'

/** An app that speaks HTTP/1.1 and h2c on one port (the first bytes say which), counting connections per protocol. */
async function startDualApp(): Promise<{ port: number; h2Sessions: number; h1Requests: number; h2Streams: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const h2 = http2.createServer()
  const h1 = http.createServer((req, res) => {
    app.h1Requests++
    res.setHeader('x-proto', 'http/1.1')
    res.end(`h1 ${req.url}`)
  })
  const socks = new Set<net.Socket>()
  const app = {
    port: 0,
    h2Sessions: 0,
    h1Requests: 0,
    h2Streams: [] as IncomingHttpHeaders[],
    close: async () => {
      for (const s of socks) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
  h2.on('session', () => app.h2Sessions++)
  h2.on('stream', (stream, headers) => {
    app.h2Streams.push(headers)
    stream.on('error', () => {})
    const path = String(headers[':path'])
    if (path.startsWith('/slow')) {
      setTimeout(() => {
        stream.respond({ ':status': 200, 'x-proto': 'h2' })
        stream.end(`h2 ${path}`)
      }, 100)
      return
    }
    if (path === '/trailers') {
      stream.respond({ ':status': 200, 'x-proto': 'h2' }, { waitForTrailers: true })
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123', 'grpc-status': '0' }))
      stream.end('with trailers')
      return
    }
    if (path === '/echo') {
      stream.respond({ ':status': 200, 'x-proto': 'h2' })
      stream.pipe(stream)
      return
    }
    stream.respond({ ':status': 200, 'x-proto': 'h2', 'x-te': String(headers.te) })
    stream.end(`h2 ${path}`)
  })
  const server = net.createServer((sock) => {
    socks.add(sock)
    sock.once('close', () => socks.delete(sock))
    sock.on('error', () => {})
    const onReadable = (): void => {
      const first = sock.read() as Buffer | null
      if (first === null) return
      sock.removeListener('readable', onReadable)
      sock.unshift(first)
      ;(first.toString('latin1', 0, 3) === 'PRI' ? h2 : h1).emit('connection', sock)
    }
    sock.on('readable', onReadable)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  app.port = (server.address() as AddressInfo).port
  return app
}

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
  trailers: IncomingHttpHeaders | null
}

function h2request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':authority': 'payments', ...headers }, { endStream: body === undefined })
    const out: Reply = { status: 0, headers: {}, body: '', trailers: null }
    const chunks: Buffer[] = []
    req.on('response', (h) => {
      out.status = Number(h[':status'])
      out.headers = h
    })
    req.on('trailers', (t) => (out.trailers = t))
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      out.body = Buffer.concat(chunks).toString()
      resolve(out)
    })
    req.on('error', reject)
    if (body !== undefined) req.end(body)
  })
}

let pki: TestPki
let app: Awaited<ReturnType<typeof startDualApp>>
let payments: TestSidecar
let orders: TestSidecar
let client: ClientHttp2Session

const tlsConnections = (sc: TestSidecar): number => sc.logger.lines.filter((l) => (l.obj as { event?: string }).event === 'upstream_tls_connected').length

beforeAll(async () => {
  pki = await createTestPki()
  app = await startDualApp()
  payments = await startSidecar({ pki, serviceAccount: 'payments', app: `127.0.0.1:${app.port}` })
  orders = await startSidecar({ pki, serviceAccount: 'orders', app: '127.0.0.1:1', clusters: [{ name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: [payments.spiffeId] }] })
  client = http2.connect(`http://127.0.0.1:${orders.outbound}`)
  client.on('error', () => {})
})

afterAll(async () => {
  client?.destroy()
  await orders?.close()
  await payments?.close()
  await app?.close()
})

describe('h2c caller → sidecar pair over ALPN h2 → h2c app', () => {
  test('a request arrives as HTTP/2 at the app with its authority and te: trailers, and its answer comes back', async () => {
    const r = await h2request(client, { ':path': '/orders/7', te: 'trailers' })
    expect([r.status, r.body, r.headers['x-proto'], r.headers['x-te']]).toEqual([200, 'h2 /orders/7', 'h2', 'trailers'])
    const seen = app.h2Streams.at(-1)!
    expect(seen[':authority']).toBe('payments')
    // payments' sidecar set XFCC from the verified peer certificate of orders.
    expect(String(seen['x-forwarded-client-cert'])).toContain(`URI=${orders.spiffeId}`)
  })

  test('ONE mTLS connection between the sidecars carries 30 concurrent requests; one h2c session to the app', async () => {
    const before = tlsConnections(orders)
    const sessionsBefore = app.h2Sessions
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => h2request(client, { ':path': `/slow/${i}` })))
    expect(replies.map((r) => r.status)).toEqual(Array(30).fill(200))
    expect(replies.map((r) => r.body).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `h2 /slow/${i}`).sort())
    // Sessions made by the first test are reused: no new connection at either hop.
    expect(tlsConnections(orders) - before).toBe(0)
    expect(app.h2Sessions - sessionsBefore).toBe(0)
    expect(tlsConnections(orders)).toBe(1)
    expect(app.h2Sessions).toBe(1)
  })

  test('response trailers arrive at the caller', async () => {
    const r = await h2request(client, { ':path': '/trailers' })
    expect(r.body).toBe('with trailers')
    expect(r.trailers).toMatchObject({ 'x-checksum': 'abc123', 'grpc-status': '0' })
  })

  test('a 2 MiB body goes up and comes back whole', async () => {
    const big = Buffer.alloc(2 << 20, 9)
    const r = await h2request(client, { ':method': 'POST', ':path': '/echo' }, big)
    expect(r.body.length).toBe(big.length)
  })

  test('an HTTP/1.1 caller on the same pair still works, over HTTP/1.1 all the way', async () => {
    const before = app.h1Requests
    const r = await plainRequest(orders.outbound, { path: '/legacy', headers: { host: 'payments' } })
    expect([r.status, r.body, r.headers['x-proto']]).toEqual([200, 'h1 /legacy', 'http/1.1'])
    expect(app.h1Requests - before).toBe(1)
  })

  test('one access-log line per request on each side, protocol HTTP/2.0', async () => {
    const before = { o: orders.accessLog.length, p: payments.accessLog.length }
    await h2request(client, { ':path': '/logged' })
    await until(() => orders.accessLog.length > before.o && payments.accessLog.length > before.p, 3000, 'the access-log lines')
    const o = orders.accessLog.slice(before.o)
    const p = payments.accessLog.slice(before.p)
    expect(o.map((e) => [e.path, e.protocol, e.response_code, e.direction])).toEqual([['/logged', 'HTTP/2.0', 200, 'outbound']])
    expect(p.map((e) => [e.path, e.protocol, e.response_code, e.direction, e.downstream_peer_principal])).toEqual([['/logged', 'HTTP/2.0', 200, 'inbound', orders.spiffeId]])
  })

  test('Istio request metrics on both sides: request_protocol http, mutual_tls, no grpc_response_status', async () => {
    const inbound = samples((await scrape(payments.admin)).families, 'istio_requests_total', { reporter: 'destination', source_principal: orders.spiffeId, response_code: '200', request_protocol: 'http' })
    expect(inbound.length).toBe(1)
    expect(Number(inbound[0]!.value)).toBeGreaterThanOrEqual(30)
    expect(inbound[0]!.labels.connection_security_policy).toBe('mutual_tls')
    expect('grpc_response_status' in inbound[0]!.labels).toBe(false)
    const outbound = samples((await scrape(orders.admin)).families, 'istio_requests_total', { reporter: 'source', destination_principal: payments.spiffeId, response_code: '200' })
    expect(outbound.reduce((n, s) => n + Number(s.value), 0)).toBeGreaterThanOrEqual(30)
  })

  test('an unknown authority: 404 NR from orders, nothing leaves the sidecar', async () => {
    const before = tlsConnections(orders)
    const r = await h2request(client, { ':path': '/', ':authority': 'nowhere.example' })
    expect([r.status, r.headers['x-remora-response-flags']]).toEqual([404, 'NR'])
    expect(tlsConnections(orders)).toBe(before)
  })

  test('a config swap that keeps the endpoint keeps its session; one that drops it closes the session (GOAWAY), and the next request dials anew', async () => {
    const cluster = { name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: [payments.spiffeId] }
    const before = tlsConnections(orders)
    orders.sidecar.applyPolicies([])
    expect((await h2request(client, { ':path': '/kept' })).status).toBe(200)
    expect(tlsConnections(orders)).toBe(before)
    orders.sidecar.applySnapshot({ version: 'no-payments', policies: [], clusters: [] })
    expect((await h2request(client, { ':path': '/gone' })).status).toBe(404)
    orders.sidecar.applySnapshot({ version: 'payments-back', policies: [], clusters: [cluster] })
    expect((await h2request(client, { ':path': '/back' })).status).toBe(200)
    expect(tlsConnections(orders)).toBe(before + 1)
  })
})
