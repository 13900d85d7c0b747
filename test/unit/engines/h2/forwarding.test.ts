// The h2 front and terminal through a hand-made chain of the real stages, against a real h2c app:
// pseudo-headers mapped for the stages, both socket kinds the listeners hand over (a plaintext one
// whose first bytes were read and handed back, a TLS one with ALPN h2), one upstream session for
// concurrent requests, bodies streamed both ways, trailers, te: trailers, the caller's reset.
import http2 from 'node:http2'
import { afterEach, describe, expect, test } from 'vitest'
import type { RequestContext } from '../../../../proxy/pipeline/index.js'
import { createTestPki } from '../../../helpers/pki.js'
import { closeSession, connect, createH2Upstream, credentialsFor, request, routeTo, startFront, startH2App, testChain, type FrontHarness, type H2App } from './harness.js'
import { until } from '../../../helpers/mesh.js'
import { CredentialStore } from '../../../../proxy/tls/index.js'

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!()
})

const noCreds = new CredentialStore(null)

async function setup(app: H2App, o: { sniff?: boolean } = {}): Promise<{ front: FrontHarness; seen: RequestContext[]; upstream: ReturnType<typeof createH2Upstream> }> {
  const upstream = createH2Upstream(noCreds)
  const seen: RequestContext[] = []
  const chain = testChain(upstream, () => routeTo(app.address), { seen })
  const front = await startFront(() => chain, o)
  cleanup.push(() => app.close(), () => upstream.close(), () => front.close())
  return { front, seen, upstream }
}

describe('h2c: caller → front → chain → terminal → app', () => {
  for (const sniff of [false, true]) {
    test(`a GET reaches the app with its authority, path and query (${sniff ? 'first bytes read and handed back' : 'socket handed over untouched'})`, async () => {
      const app = await startH2App((s, h) => {
        s.respond({ ':status': 200, 'content-type': 'text/plain', 'x-app': String(h[':path']) })
        s.end('hello')
      })
      const { front, seen } = await setup(app, { sniff })
      const c = connect(front.port)
      cleanup.push(() => closeSession(c))
      const r = await request(c, { ':path': '/orders/../items?id=7', ':authority': 'payments.shop', 'x-custom': 'a' })
      expect(r.status).toBe(200)
      expect(r.body.toString()).toBe('hello')
      expect(r.headers['x-app']).toBe('/items?id=7') // normalized by sanitize before it left
      expect(app.seen[0]![':authority']).toBe('payments.shop')
      expect(app.seen[0]!['x-custom']).toBe('a')
      expect(app.seen[0]!['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
      expect(app.seen[0]!.host).toBeUndefined() // :authority carries it, never a host field on h2
      const ctx = seen[0]!
      expect([ctx.method, ctx.req.httpVersion, ctx.host, ctx.path, ctx.query]).toEqual(['GET', '2.0', 'payments.shop', '/items', '?id=7'])
      expect(ctx.res.statusCode).toBe(200)
      expect(ctx.bytesSent).toBe(5)
    })
  }

  test('an :authority and a host that differ are refused 400 (RFC 9113 §8.3.1), never reaching the app; equal ones pass', async () => {
    const app = await startH2App((s) => s.respond({ ':status': 200 }, { endStream: true }))
    const { front } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const bad = await request(c, { ':path': '/', ':authority': 'payments.shop', host: 'admin.internal' })
    expect(bad.status).toBe(400)
    expect(bad.headers['x-remora-error-code']).toBe('REMORA_ERR_BAD_HOST')
    expect(app.streams).toBe(0)
    const ok = await request(c, { ':path': '/', ':authority': 'payments.shop', host: 'PAYMENTS.shop' })
    expect(ok.status).toBe(200)
  })

  test('concurrent requests share one upstream session (one TCP connection to the app)', async () => {
    const app = await startH2App((s) => setTimeout(() => {
        s.respond({ ':status': 200 })
        s.end('x')
      }, 20))
    const { front, upstream } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => request(c, { ':path': `/r/${i}` })))
    expect(replies.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(app.streams).toBe(20)
    expect(app.sessions).toBe(1)
    expect(upstream.stats().sessionsCreated).toBe(1)
    expect(front.accepted).toBe(1)
  })

  test('bodies stream both ways: 8 MiB up and the same back, byte counts on the context', async () => {
    const app = await startH2App((s) => {
      s.respond({ ':status': 200 })
      s.pipe(s) // echo, with the stream's own flow control
    })
    const { front, seen } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const big = Buffer.alloc(8 << 20, 7)
    const r = await request(c, { ':method': 'POST', ':path': '/upload' }, big)
    expect(r.status).toBe(200)
    expect(r.body.length).toBe(big.length)
    expect(r.body.equals(big)).toBe(true)
    expect(seen[0]!.bytesReceived).toBe(big.length)
    expect(seen[0]!.bytesSent).toBe(big.length)
  })

  test('response trailers reach the caller; te: trailers reaches the app (sanitize drops every other te)', async () => {
    const app = await startH2App((s, h) => {
      s.respond({ ':status': 200, 'x-te': String(h.te) }, { waitForTrailers: true })
      s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0', 'x-sum': '42' }))
      s.end('body')
    })
    const { front } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const r = await request(c, { ':path': '/t', te: 'trailers' })
    expect(r.body.toString()).toBe('body')
    expect(r.headers['x-te']).toBe('trailers')
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'x-sum': '42' })
  })

  test('a trailers-only response stays one HEADERS frame ending the stream', async () => {
    const app = await startH2App((s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' }, { endStream: true }))
    const { front } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const r = await request(c, { ':method': 'POST', ':path': '/pkg.Svc/Get', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5))
    expect(r.endAfterHeaders).toBe(true)
    expect(r.headers['grpc-status']).toBe('5')
    expect(r.trailers).toBeNull()
  })

  test("the caller's RST_STREAM cancels the upstream stream (the app sees it closed with CANCEL); flag DC", async () => {
    let appStream: http2.ServerHttp2Stream | null = null
    const app = await startH2App((s) => {
      appStream = s
      s.respond({ ':status': 200 })
      s.write('first')
    })
    const { front, seen } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const req = c.request({ ':path': '/stream', ':authority': 'app.shop' }, { endStream: true })
    req.on('error', () => {})
    await new Promise((r) => req.once('data', r))
    req.close(http2.constants.NGHTTP2_CANCEL)
    await until(() => appStream !== null && appStream.closed, 3000, 'the app stream closed')
    expect(appStream!.rstCode).toBe(http2.constants.NGHTTP2_CANCEL)
    await until(() => seen.length === 1, 3000, 'the context finished')
    expect(seen[0]!.flags).toContain('DC')
  })

  test('an answer complete before the request body: the caller stops its body (as gRPC clients do on the status) and the call is no DC', async () => {
    const app = await startH2App((s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '3' }, { endStream: true }))
    const { front, seen } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const req = c.request({ ':method': 'POST', ':path': '/pkg.Svc/Upload', ':authority': 'app.shop', 'content-type': 'application/grpc' })
    req.on('error', () => {})
    req.write(Buffer.alloc(5)) // the body is not finished
    const head = await new Promise<http2.IncomingHttpHeaders>((r) => req.once('response', r))
    expect(head['grpc-status']).toBe('3')
    req.close(http2.constants.NGHTTP2_CANCEL)
    await until(() => seen.length === 1, 3000, 'the call finished')
    expect(seen[0]!.flags).toEqual([])
  })

  test('a downstream stream reset by the caller before any upstream answer never leaves a session behind', async () => {
    const app = await startH2App(() => {}) // never answers
    const { front, upstream } = await setup(app)
    const c = connect(front.port)
    cleanup.push(() => closeSession(c))
    const req = c.request({ ':path': '/hang', ':authority': 'app.shop' }, { endStream: true })
    req.on('error', () => {})
    await until(() => app.streams === 1, 3000, 'the app got the stream')
    req.close(http2.constants.NGHTTP2_CANCEL)
    await until(() => upstream.stats().sessions.every((s) => s.streams === 0), 3000, 'no upstream stream left')
  })
})

describe('ALPN h2 over mTLS (sidecar to sidecar)', () => {
  test('the terminal dials with ALPN h2 and secure naming; the front reads the peer identity set on the TLS socket', async () => {
    const pki = await createTestPki()
    const app = await startH2App((s) => {
        s.respond({ ':status': 200 })
        s.end('secure')
      })
    const serverId = 'spiffe://cluster.local/ns/shop/sa/payments'
    // The "peer sidecar": a TLS front whose chain routes to the app in plaintext.
    const inUp = createH2Upstream(noCreds)
    const inSeen: RequestContext[] = []
    const inbound = await startFront(() => testChain(inUp, () => routeTo(app.address), { seen: inSeen }), { tls: { pki, serverId } })
    // The calling sidecar: an h2c front whose terminal dials the peer over mTLS.
    const outUp = createH2Upstream(await credentialsFor(pki, 'spiffe://cluster.local/ns/shop/sa/orders'))
    const outbound = await startFront(() => testChain(outUp, () => routeTo(`127.0.0.1:${inbound.port}`, { identities: [serverId], servername: 'payments.shop' })))
    cleanup.push(() => app.close(), () => inUp.close(), () => outUp.close(), () => inbound.close(), () => outbound.close())
    const c = connect(outbound.port)
    cleanup.push(() => closeSession(c))
    const replies = await Promise.all(Array.from({ length: 10 }, () => request(c, { ':path': '/pay' })))
    expect(replies.map((r) => r.body.toString())).toEqual(Array(10).fill('secure'))
    expect(inbound.accepted).toBe(1) // one mTLS connection carried all ten
    expect(inSeen[0]!.peer?.uri).toBe('spiffe://cluster.local/ns/shop/sa/orders')
    expect(inSeen[0]!.connectionSecurity).toBe('mutual_tls')
  })

  test('secure naming: a peer presenting another identity gets nothing; the caller gets 503 UF REMORA_ERR_UPSTREAM_SECURE_NAMING', async () => {
    const pki = await createTestPki()
    const app = await startH2App((s) => {
        s.respond({ ':status': 200 })
        s.end('secret')
      })
    const inUp = createH2Upstream(noCreds)
    const inbound = await startFront(() => testChain(inUp, () => routeTo(app.address)), { tls: { pki, serverId: 'spiffe://cluster.local/ns/shop/sa/impostor' } })
    const outUp = createH2Upstream(await credentialsFor(pki, 'spiffe://cluster.local/ns/shop/sa/orders'))
    const outbound = await startFront(() => testChain(outUp, () => routeTo(`127.0.0.1:${inbound.port}`, { identities: ['spiffe://cluster.local/ns/shop/sa/payments'], servername: 'payments.shop' })))
    cleanup.push(() => app.close(), () => inUp.close(), () => outUp.close(), () => inbound.close(), () => outbound.close())
    const c = connect(outbound.port)
    cleanup.push(() => closeSession(c))
    const r = await request(c, { ':path': '/pay' })
    expect(r.status).toBe(503)
    expect(r.headers['x-remora-response-flags']).toBe('UF')
    expect(r.headers['x-remora-error-code']).toBe('REMORA_ERR_UPSTREAM_SECURE_NAMING')
    expect(app.streams).toBe(0)
  })
})
