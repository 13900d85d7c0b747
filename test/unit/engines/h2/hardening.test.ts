// RFC 9113 §10.5 abuse against the h2 front, in raw frames on real sockets: each attack has a
// bound, and each bound has its twin (what stays just under it keeps working). Run on Node 20 and
// 26: nghttp2 (1.61 / 1.70 here) defends some of these itself, the front the rest.
import http2 from 'node:http2'
import { afterEach, describe, expect, test } from 'vitest'
import { DEFAULT_FRONT_LIMITS } from '../../../../proxy/engines/common/index.js'
import { H2_FRONT } from '../../../../proxy/engines/h2/index.js'
import type { Handler, RequestContext } from '../../../../proxy/pipeline/index.js'
import { F, frame, GET, goawayCode, headers, hpack, ping, rawClient, rst, settings, statusOf, T } from './frames.js'
import { closeSession, connect, request, startFront } from './harness.js'

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!()
})

/** A front whose chain answers 200 at once, or holds every request (`hold`), counting what ran. */
async function front(o: { hold?: boolean; limits?: typeof DEFAULT_FRONT_LIMITS } = {}) {
  const ran: RequestContext[] = []
  const handler: Handler = async (ctx) => {
    ran.push(ctx)
    if (o.hold) return new Promise<void>((r) => (ctx.res as unknown as { stream: http2.ServerHttp2Stream }).stream.once('close', () => r()))
    ctx.res.writeHead(200, { 'content-type': 'text/plain' })
    ctx.res.end('ok')
  }
  const h = await startFront(() => handler, { limits: o.limits })
  cleanup.push(() => h.close())
  return { ...h, ran }
}

const responses = (frames: { type: number; streamId: number }[]): number => frames.filter((f) => f.type === T.HEADERS).length

describe('concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS 100)', () => {
  const burst = (n: number): Buffer => Buffer.concat(Array.from({ length: n }, (_, i) => headers(1 + 2 * i, GET(`/${i}`))))

  test('advertised; streams over it sent before the caller acknowledged it are refused (REFUSED_STREAM, retriable), never reaching the chain', async () => {
    const f = await front({ hold: true })
    const c = await rawClient(f.port, { ack: false })
    cleanup.push(async () => void c.socket.destroy())
    c.write(burst(120))
    expect(await c.until((fs) => fs.filter((x) => x.type === T.RST_STREAM).length >= 20)).toBe(true)
    const s = c.frames.find((x) => x.type === T.SETTINGS && !(x.flags & F.ACK))!
    const entries = new Map<number, number>()
    for (let i = 0; i < s.payload.length; i += 6) entries.set(s.payload.readUInt16BE(i), s.payload.readUInt32BE(i + 2))
    expect(entries.get(0x3)).toBe(H2_FRONT.maxConcurrentStreams) // SETTINGS_MAX_CONCURRENT_STREAMS
    const refused = c.frames.filter((x) => x.type === T.RST_STREAM)
    expect(refused.map((x) => x.payload.readUInt32BE(0))).toEqual(Array(20).fill(NGHTTP2_REFUSED_STREAM))
    expect(f.ran.length).toBe(100)
  })

  test('a caller that acknowledged the limit and goes over it anyway loses the connection (GOAWAY); the chain ran 100', async () => {
    const f = await front({ hold: true })
    const c = await rawClient(f.port)
    await c.until((fs) => fs.some((x) => x.type === T.SETTINGS && !(x.flags & F.ACK)))
    await new Promise((r) => setTimeout(r, 50)) // our ACK is in
    c.write(burst(120))
    await c.closed
    // nghttp2 1.70 (Node 26) says PROTOCOL_ERROR "max concurrent streams exceeded"; Node 20's callback, INTERNAL_ERROR.
    expect(c.goaway()).toBeDefined()
    expect(f.ran.length).toBe(100)
  })
})

describe('rapid reset (CVE-2023-44487)', () => {
  test('HEADERS + RST_STREAM pairs: past Envoy\'s bound (half of 500) the session gets GOAWAY ENHANCE_YOUR_CALM and is closed; others keep working', async () => {
    const f = await front({ hold: true })
    const c = await rawClient(f.port)
    const pairs: Buffer[] = []
    for (let i = 0; i < 1000; i++) pairs.push(headers(1 + 2 * i, GET('/')), rst(1 + 2 * i, NGHTTP2_CANCEL))
    c.write(Buffer.concat(pairs))
    await c.closed
    const g = c.goaway()
    expect(g).toBeDefined()
    expect(goawayCode(g!)).toBe(NGHTTP2_ENHANCE_YOUR_CALM)
    expect(f.front.stats().rapidResetCloses).toBe(1)
    // Far fewer than 1000 requests ever reached the chain.
    expect(f.ran.length).toBeLessThanOrEqual(H2_FRONT.prematureResetStreamCount / 2 + 20)
    // Another caller is served.
    const ok = await rawClient(f.port)
    cleanup.push(async () => void ok.socket.destroy())
    ok.write(headers(1, GET('/after')))
    const reached = async (): Promise<boolean> => {
      for (let i = 0; i < 100; i++) {
        if (f.ran.some((x) => x.target === '/after')) return true
        await new Promise((r) => setTimeout(r, 10))
      }
      return false
    }
    expect(await reached()).toBe(true)
  })

  test('its twin: 200 streams reset by the caller leave the connection open', async () => {
    const f = await front({ hold: true })
    const c = await rawClient(f.port)
    cleanup.push(async () => void c.socket.destroy())
    const pairs: Buffer[] = []
    for (let i = 0; i < 200; i++) pairs.push(headers(1 + 2 * i, GET('/')), rst(1 + 2 * i, NGHTTP2_CANCEL))
    c.write(Buffer.concat(pairs))
    await new Promise((r) => setTimeout(r, 300))
    c.write(ping(7))
    expect(await c.until((fs) => fs.some((x) => x.type === T.PING && (x.flags & F.ACK) !== 0))).toBe(true)
    expect(c.goaway()).toBeUndefined()
    expect(f.front.stats().rapidResetCloses).toBe(0)
  })
})

describe('CONTINUATION flood (CVE-2024-27316 class)', () => {
  test('a header block that never ends: the connection is closed with a GOAWAY, the chain never runs', async () => {
    const f = await front()
    const c = await rawClient(f.port)
    const started = Date.now()
    const flood: Buffer[] = [headers(1, GET('/'), 0)] // no END_HEADERS
    for (let i = 0; i < 5000; i++) flood.push(frame(T.CONTINUATION, 0, 1, hpack([[`x-f${i}`, 'v']])))
    c.write(Buffer.concat(flood))
    await c.closed
    expect(Date.now() - started).toBeLessThan(3000)
    expect(c.goaway()).toBeDefined()
    expect(f.ran.length).toBe(0)
  })

  test('its twin: a header block split over a few CONTINUATION frames is a request like any other', async () => {
    const f = await front()
    const c = await rawClient(f.port)
    cleanup.push(async () => void c.socket.destroy())
    const block = hpack([...GET('/split'), ['x-a', '1'], ['x-b', '2'], ['x-c', '3']])
    const parts = [block.subarray(0, 10), block.subarray(10, 20), block.subarray(20, 30), block.subarray(30)]
    c.write(Buffer.concat([frame(T.HEADERS, F.END_STREAM, 1, parts[0]), frame(T.CONTINUATION, 0, 1, parts[1]), frame(T.CONTINUATION, 0, 1, parts[2]), frame(T.CONTINUATION, F.END_HEADERS, 1, parts[3])]))
    expect(await c.until((fs) => fs.some((x) => x.type === T.HEADERS))).toBe(true)
    expect(statusOf(c.frames.find((x) => x.type === T.HEADERS)!)).toBe(200)
    expect(f.ran[0]!.req.headers['x-c']).toBe('3')
  })
})

describe('SETTINGS and PING floods', () => {
  for (const [name, make] of [
    ['SETTINGS', () => settings([[0x4, 65535]])],
    ['PING', () => ping(1)],
  ] as const) {
    test(`${name} frames sent without reading the acknowledgements: the session is closed, memory stays bounded`, async () => {
      const f = await front()
      const c = await rawClient(f.port, { read: false })
      const one = make()
      const flood = Buffer.concat(Array.from({ length: 20_000 }, () => one))
      const rssBefore = process.memoryUsage().rss
      for (let i = 0; i < 20 && !c.socket.destroyed; i++) {
        c.write(flood)
        await new Promise((r) => setTimeout(r, 20))
      }
      const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))])
      if (!closed) c.socket.destroy()
      expect(closed).toBe(true)
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 << 20)
      expect(f.front.stats().sessions).toBe(0)
    })
  }

  test('their twin: a few PINGs and SETTINGS are acknowledged', async () => {
    const f = await front()
    const c = await rawClient(f.port)
    cleanup.push(async () => void c.socket.destroy())
    c.write(Buffer.concat([ping(1), ping(2), settings([[0x4, 65535]])]))
    expect(await c.until((fs) => fs.filter((x) => x.type === T.PING && x.flags & F.ACK).length === 2 && fs.filter((x) => x.type === T.SETTINGS && x.flags & F.ACK).length >= 1)).toBe(true)
  })
})

describe('header limits (sidecar.yaml limits, as on HTTP/1.1)', () => {
  test('more header fields than maxRequestHeadersCount: 431 REMORA_ERR_TOO_MANY_HEADERS, reported, the chain never runs; the limit itself passes', async () => {
    const f = await front()
    const c = connect(f.port)
    cleanup.push(() => closeSession(c))
    const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']))
    const over = await request(c, { ':path': '/', ...fields(DEFAULT_FRONT_LIMITS.maxRequestHeadersCount + 1) })
    expect([over.status, over.headers['x-remora-error-code']]).toEqual([431, 'REMORA_ERR_TOO_MANY_HEADERS'])
    expect(f.parserErrors).toEqual([{ code: 'REMORA_ERR_TOO_MANY_HEADERS' }])
    expect(f.ran.length).toBe(0)
    const at = await request(c, { ':path': '/', ...fields(DEFAULT_FRONT_LIMITS.maxRequestHeadersCount) })
    expect(at.status).toBe(200)
  })

  test('a header list over maxRequestHeadersBytes: 431 REMORA_ERR_HEADERS_TOO_LARGE; past twice the limit nghttp2 resets the stream itself', async () => {
    const f = await front()
    const c = connect(f.port)
    cleanup.push(() => closeSession(c))
    const over = await request(c, { ':path': '/', 'x-big': 'a'.repeat(DEFAULT_FRONT_LIMITS.maxRequestHeadersBytes) })
    expect([over.status, over.headers['x-remora-error-code']]).toEqual([431, 'REMORA_ERR_HEADERS_TOO_LARGE'])
    const raw = await rawClient(f.port)
    cleanup.push(async () => void raw.socket.destroy())
    // A 120 KiB field cannot go in one frame of the default 16 KiB: HEADERS + CONTINUATIONs.
    const block = hpack([...GET('/'), ['x-huge', 'a'.repeat(2 * DEFAULT_FRONT_LIMITS.maxRequestHeadersBytes + 10)]])
    const frames: Buffer[] = []
    for (let off = 0, first = true; off < block.length; off += 16_000, first = false) {
      const last = off + 16_000 >= block.length
      frames.push(frame(first ? T.HEADERS : T.CONTINUATION, (first ? F.END_STREAM : 0) | (last ? F.END_HEADERS : 0), 1, block.subarray(off, off + 16_000)))
    }
    raw.write(Buffer.concat(frames))
    expect(await raw.until((fs) => fs.some((x) => (x.type === T.RST_STREAM && x.streamId === 1) || x.type === T.GOAWAY || x.type === T.HEADERS))).toBe(true)
    expect(raw.frames.some((x) => x.type === T.HEADERS && x.streamId === 1)).toBe(false)
    expect(f.ran.length).toBe(0)
  })

  test('a request with neither :authority nor host is refused by nghttp2 itself (RST_STREAM PROTOCOL_ERROR), before the chain', async () => {
    const f = await front()
    const c = await rawClient(f.port)
    cleanup.push(async () => void c.socket.destroy())
    c.write(headers(1, GET('/', null)))
    expect(await c.until((fs) => fs.some((x) => x.type === T.RST_STREAM || x.type === T.HEADERS))).toBe(true)
    const r = c.frames.find((x) => x.type === T.RST_STREAM)!
    expect(r.payload.readUInt32BE(0)).toBe(NGHTTP2_PROTOCOL_ERROR)
    expect(f.ran.length).toBe(0)
  })
})

describe('connection timeouts', () => {
  const limits = { ...DEFAULT_FRONT_LIMITS, requestHeadersTimeoutMs: 300, idleTimeoutMs: 300 }

  test('a connection that opens no stream within the head timeout is closed (nothing to answer: a GOAWAY, no response)', async () => {
    const f = await front({ limits })
    const c = await rawClient(f.port)
    const t0 = Date.now()
    await c.closed
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
    expect(responses(c.frames)).toBe(0)
  })

  test('an idle connection (its streams all done) gets GOAWAY NO_ERROR after the idle timeout; one with a stream open does not', async () => {
    const f = await front({ limits })
    const c = await rawClient(f.port)
    c.write(headers(1, GET('/')))
    await c.closed
    const g = c.goaway()
    expect(g).toBeDefined()
    expect(goawayCode(g!)).toBe(0)
    expect(responses(c.frames)).toBe(1)
    const held = await front({ limits, hold: true })
    const h = await rawClient(held.port)
    cleanup.push(async () => void h.socket.destroy())
    h.write(headers(1, GET('/')))
    await new Promise((r) => setTimeout(r, 800))
    expect(h.goaway()).toBeUndefined()
  })
})
