import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startPair, TEST_ENGINE } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// The raw engine reads upstream responses into reused buffers (proxy/engines/raw/pool.ts,
// UpstreamReader): a buffer is read into again only once every write of its bytes has completed.
// End to end, with both sidecars reading that way: random bodies checked by hash at the client,
// some clients reading slowly (downstream back-pressure, writes completing late), both framings
// (Content-Length passes raw, chunked goes through the parser), and a tunnel opened on a connection
// that already carried a response. test/unit/engine-raw/read-buffers.test.ts holds bytes on purpose
// while reads go on, which is what would expose a buffer reused too early.
const MiB = 1024 * 1024
const BODY = randomBytes(8 * MiB)
const BODY_SHA = createHash('sha256').update(BODY).digest('hex')

let pki: TestPki
let app: Upstream
let pair: Awaited<ReturnType<typeof startPair>>

/** Writes BODY in pieces of uneven size (so reads never line up with buffer sizes), chunked or not. */
function sendBody(res: http.ServerResponse, chunked: boolean): void {
  res.writeHead(200, chunked ? { 'content-type': 'application/octet-stream' } : { 'content-type': 'application/octet-stream', 'content-length': BODY.length })
  let off = 0
  let step = 1
  const pump = (): void => {
    while (off < BODY.length) {
      step = (step * 7919 + 13) % 97_001
      const end = Math.min(BODY.length, off + 1 + step)
      const ok = res.write(BODY.subarray(off, end))
      off = end
      if (!ok) return void res.once('drain', pump)
    }
    res.end()
  }
  pump()
}

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream((req, res) => {
    if (req.url === '/fixed') return sendBody(res, false)
    if (req.url === '/chunked') return sendBody(res, true)
    res.end('ok')
  })
  // An echo tunnel after 101: every byte the caller sends comes back.
  app.server.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n')
    if (head.length > 0) socket.write(head)
    socket.pipe(socket)
  })
  pair = await startPair({ pki, app: app.address, engine: TEST_ENGINE })
}, 60_000)

afterAll(async () => {
  await pair?.close()
  await app?.close()
})

/** GETs `path` through the pair and hashes the body; `slow` pauses reading now and then. */
function download(path: string, slow: boolean): Promise<{ status: number; bytes: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: pair.orders.outbound, path, headers: { host: 'payments' }, agent: false }, (res) => {
      const h = createHash('sha256')
      let bytes = 0
      let n = 0
      res.on('data', (c: Buffer) => {
        h.update(c)
        bytes += c.length
        // Slow enough that the kernel's buffers fill and the sidecar's writes complete late.
        if (slow && ++n % 4 === 0) {
          res.pause()
          setTimeout(() => res.resume(), 10)
        }
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha: h.digest('hex') }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

describe('upstream read buffers are reused only once their bytes are written', () => {
  test('Content-Length bodies arrive intact, fast and slow readers at once', async () => {
    const got = await Promise.all([download('/fixed', true), download('/fixed', false), download('/fixed', true), download('/fixed', false)])
    for (const r of got) expect(r).toEqual({ status: 200, bytes: BODY.length, sha: BODY_SHA })
  })

  test('chunked bodies (through the parser) arrive intact, fast and slow readers at once', async () => {
    const got = await Promise.all([download('/chunked', true), download('/chunked', false), download('/chunked', true)])
    for (const r of got) expect(r).toEqual({ status: 200, bytes: BODY.length, sha: BODY_SHA })
  })

  test('a tunnel on a reused upstream connection carries bytes both ways unchanged', async () => {
    // One plain request first, so the upgrade may go out on a pooled (already read-into) connection.
    expect((await download('/small', false)).status).toBe(200)
    const sock = net.connect(pair.orders.outbound, '127.0.0.1')
    await new Promise<void>((r) => sock.once('connect', () => r()))
    sock.write('GET /ws HTTP/1.1\r\nhost: payments\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n')
    const payload = randomBytes(3 * MiB)
    let received = Buffer.alloc(0)
    let head = ''
    const echoed = new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = []
      let n = 0
      sock.on('data', (c: Buffer) => {
        if (head === '') {
          received = Buffer.concat([received, c])
          const i = received.indexOf('\r\n\r\n')
          if (i < 0) return
          head = received.subarray(0, i).toString('latin1')
          c = received.subarray(i + 4)
          sock.write(payload)
        }
        parts.push(c)
        n += c.length
        if (n >= payload.length) resolve(Buffer.concat(parts))
      })
      sock.on('error', reject)
    })
    const back = await echoed
    sock.destroy()
    expect(head).toMatch(/^HTTP\/1\.1 101 /)
    expect(back.length).toBe(payload.length)
    expect(back.equals(payload)).toBe(true)
  })
})
