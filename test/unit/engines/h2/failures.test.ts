// Upstream failures on the h2 terminal, each answered from the common catalog (status, flag, code)
// before a response head, or as a reset after one; and the two ways a server says a stream was
// never processed (REFUSED_STREAM, a GOAWAY below it), which are retried once on a new session.
import http2 from 'node:http2'
import net from 'node:net'
import { afterEach, describe, expect, test } from 'vitest'
import type { RequestContext, RouteTarget } from '../../../../proxy/pipeline/index.js'
import { CredentialStore } from '../../../../proxy/tls/index.js'
import { until } from '../../../helpers/mesh.js'
import { goaway, OK_HEADERS, rawServer } from './frames.js'
import { closeSession, connect, createH2Upstream, request, routeTo, startFront, startH2App, testChain, type AppStream, type H2App } from './harness.js'

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!()
})

async function through(route: () => RouteTarget, app?: H2App) {
  const upstream = createH2Upstream(new CredentialStore(null))
  const seen: RequestContext[] = []
  const front = await startFront(() => testChain(upstream, route, { seen }))
  const c = connect(front.port)
  cleanup.push(async () => app?.close(), () => upstream.close(), () => front.close(), () => closeSession(c))
  return { c, seen, upstream }
}

async function appThrough(onStream: AppStream, route: Partial<RouteTarget> = {}) {
  const app = await startH2App(onStream)
  return { app, ...(await through(() => routeTo(app.address, route), app)) }
}

describe('before the response head: the common catalog', () => {
  test('connection refused: 503 UF REMORA_ERR_UPSTREAM_CONNECT', async () => {
    const closed = net.createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as net.AddressInfo).port
    await new Promise<void>((r) => closed.close(() => r()))
    const { c } = await through(() => routeTo(`127.0.0.1:${port}`))
    const r = await request(c, { ':path': '/' })
    expect([r.status, r.headers['x-remora-response-flags'], r.headers['x-remora-error-code']]).toEqual([503, 'UF', 'REMORA_ERR_UPSTREAM_CONNECT'])
    expect(r.body.toString()).toMatch(/ECONNREFUSED/)
  })

  test('a server that never sends its SETTINGS within the connect timeout: 503 UF (connect timeout)', async () => {
    const silent = net.createServer((s) => s.on('error', () => {}).resume()) // reads (so it sees our FIN) and never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    cleanup.push(() => new Promise((r) => silent.close(() => r())))
    const { c } = await through(() => routeTo(`127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { connectTimeoutMs: 200 }))
    const r = await request(c, { ':path': '/' })
    expect([r.status, r.headers['x-remora-response-flags']]).toEqual([503, 'UF'])
    expect(r.body.toString()).toMatch(/connect timeout/)
  })

  test('no response head within the route timeout: 504 UT, and the upstream stream is cancelled', async () => {
    let appStream: http2.ServerHttp2Stream | null = null
    const { c, app } = await appThrough((s) => void (appStream = s), { timeoutMs: 150 })
    const r = await request(c, { ':path': '/slow' })
    expect([r.status, r.headers['x-remora-response-flags'], r.headers['x-remora-error-code']]).toEqual([504, 'UT', 'REMORA_ERR_UPSTREAM_TIMEOUT'])
    await until(() => appStream?.closed === true, 2000, 'the app stream closed')
    expect(app.streams).toBe(1)
  })

  test('RST_STREAM from the upstream before its head, the connection kept: 503 UR REMORA_ERR_UPSTREAM_STREAM_RESET naming the HTTP/2 error code (Envoy: upstream remote reset)', async () => {
    const { c } = await appThrough((s) => s.close(NGHTTP2_INTERNAL_ERROR))
    const r = await request(c, { ':path': '/' })
    expect([r.status, r.headers['x-remora-response-flags'], r.headers['x-remora-error-code']]).toEqual([503, 'UR', 'REMORA_ERR_UPSTREAM_STREAM_RESET'])
    expect(r.body.toString()).toMatch(/remote reset \(INTERNAL_ERROR\)/)
  })

  test('the upstream connection closing before its head: 503 UC (connection termination)', async () => {
    const { c } = await appThrough((s) => s.session?.destroy())
    const r = await request(c, { ':path': '/' })
    expect([r.status, r.headers['x-remora-response-flags']]).toEqual([503, 'UC'])
  })
})

describe('after the response head: a reset', () => {
  test('an upstream RST_STREAM mid-body resets the caller\'s stream; flag UR; the status stays what was sent', async () => {
    const { c, seen } = await appThrough((s) => {
      s.respond({ ':status': 200 })
      s.write('partial', () => setTimeout(() => s.destroy(new Error('app failed')), 20)) // a real RST_STREAM (close() would send END_STREAM first)
    })
    const r = await request(c, { ':path': '/' })
    expect(r.status).toBe(200)
    expect(r.reset).toBe(NGHTTP2_INTERNAL_ERROR)
    expect(r.body.toString()).toBe('partial')
    await until(() => seen.length === 1, 2000, 'the context finished')
    expect(seen[0]!.flags).toEqual(['UR'])
    expect(seen[0]!.res.statusCode).toBe(200)
  })
})

describe('streams the server never processed are sent again, once, on a new session', () => {
  test('REFUSED_STREAM: retried, the caller gets the answer', async () => {
    let n = 0
    const { c, upstream, app } = await appThrough((s) => {
      if (n++ === 0) return void s.close(NGHTTP2_REFUSED_STREAM)
      s.respond({ ':status': 200 })
      s.end('second try')
    })
    const r = await request(c, { ':path': '/' })
    expect([r.status, r.body.toString()]).toEqual([200, 'second try'])
    expect(upstream.stats().retries).toBe(1)
    expect(app.streams).toBe(2)
  })

  test('REFUSED_STREAM twice: not retried again; 503 UR (the stream was reset, the connection kept)', async () => {
    const { c, upstream } = await appThrough((s) => s.close(NGHTTP2_REFUSED_STREAM))
    const r = await request(c, { ':path': '/' })
    expect([r.status, r.headers['x-remora-response-flags']]).toEqual([503, 'UR'])
    expect(upstream.stats().retries).toBe(1)
  })

  test('a GOAWAY whose last stream id is below ours: the session leaves the pool, the request goes again on a new one', async () => {
    // node:http2 cannot send a GOAWAY below a stream it has seen (0 means "the last one processed"): a raw server does.
    const app = await rawServer((sock, id, conn) => {
      if (conn === 0) sock.write(goaway(0, NGHTTP2_NO_ERROR))
      else sock.write(OK_HEADERS(id))
    })
    const { c, upstream } = await through(() => routeTo(`127.0.0.1:${app.port}`))
    cleanup.push(() => app.close())
    const r = await request(c, { ':path': '/' })
    expect(r.status).toBe(200)
    expect(app.connections).toBe(2)
    expect(upstream.stats()).toMatchObject({ sessionsCreated: 2, retries: 1 })
  })

  test('a GOAWAY at or above ours: the stream in flight finishes on the old session, the next request opens a new one', async () => {
    let n = 0
    const { c, upstream, app } = await appThrough((s) => {
      if (n++ === 0) s.session?.goaway(NGHTTP2_NO_ERROR) // last processed: this very stream
      s.respond({ ':status': 200 })
      s.end(`answer ${n}`)
    })
    expect((await request(c, { ':path': '/1' })).body.toString()).toBe('answer 1')
    expect((await request(c, { ':path': '/2' })).body.toString()).toBe('answer 2')
    expect(app.sessions).toBe(2)
    expect(upstream.stats()).toMatchObject({ sessionsCreated: 2, retries: 0 })
  })

  test('a request whose body already went to the refused stream is not replayed: 503 UR', async () => {
    let n = 0
    const { c, upstream } = await appThrough((s) => {
      if (n++ > 0) {
        s.respond({ ':status': 200 })
        return void s.end('replayed')
      }
      s.once('data', () => s.close(NGHTTP2_REFUSED_STREAM))
    })
    const r = await request(c, { ':method': 'POST', ':path': '/' }, 'payload')
    expect([r.status, r.headers['x-remora-response-flags']]).toEqual([503, 'UR'])
    expect(upstream.stats().retries).toBe(0)
  })

  test('after the upstream closed an idle session, the next request opens a new one', async () => {
    const { c, upstream, app } = await appThrough((s) => {
      s.respond({ ':status': 200 })
      s.end('ok')
    })
    expect((await request(c, { ':path': '/1' })).status).toBe(200)
    // the app ends the session gracefully (GOAWAY NO_ERROR with its last stream id)
    await new Promise<void>((r) => {
      app.close().then(() => r(), () => r())
    })
    await until(() => upstream.stats().sessions.length === 0, 2000, 'the session left the pool')
  })
})
