import { randomBytes } from 'node:crypto'
import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { RawPool, TCP_READ_BUFFER_BYTES, type ReadLease, type ResponseHandler, type UpstreamConnection } from '../../../proxy/engines/raw/pool.js'

// The raw engine's upstream connections read into reused buffers (UpstreamReader): a buffer is read
// into again only when nobody holds bytes of it. Real sockets: a server sends a 2 MiB response in
// pieces with pauses between them, so that the client sees many reads; the handler either holds
// every chunk until the end (a downstream that never finishes its writes) or lets go at once.
const BODY = randomBytes(2 * 1024 * 1024)
let server: net.Server
let port = 0

beforeAll(async () => {
  server = net.createServer((sock) => {
    sock.once('data', (req: Buffer) => {
      const closeDelimited = req.toString('latin1').startsWith('GET /close ')
      sock.write(closeDelimited ? 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n' : `HTTP/1.1 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n`)
      let off = 0
      const next = (): void => {
        if (off >= BODY.length) return void (closeDelimited && sock.end())
        const end = Math.min(BODY.length, off + 48 * 1024 + (off % 7919))
        sock.write(BODY.subarray(off, end))
        off = end
        setTimeout(next, 1) // separate reads on the other side
      }
      next()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()))
})

/** One GET on a fresh pooled connection; `onChunk` decides what happens to each body chunk's lease. */
async function fetchBody(onChunk: (chunk: Buffer, lease: ReadLease | null) => void, path = '/'): Promise<void> {
  const pool = new RawPool(`127.0.0.1:${port}`, (onread) => net.connect({ host: '127.0.0.1', port, ...(onread !== null ? { onread } : {}) }), 'connect', 2000, TCP_READ_BUFFER_BYTES)
  const conn: UpstreamConnection = await pool.connect()
  await new Promise<void>((resolve, reject) => {
    const h: ResponseHandler = {
      onHead: () => 0,
      onBody: onChunk,
      onComplete: () => resolve(),
      onUpgrade: () => reject(new Error('unexpected upgrade')),
      onError: (err) => reject(err),
    }
    conn.begin(h)
    conn.socket.write(`GET ${path} HTTP/1.1\r\nhost: t\r\n\r\n`)
  })
  await pool.destroy()
}

describe('UpstreamReader: reused read buffers', () => {
  test('held chunks keep their bytes while more reads arrive; each read went into a buffer nobody held', async () => {
    const held: { view: Buffer; copy: Buffer; release: () => void }[] = []
    await fetchBody((chunk, lease) => {
      expect(lease).not.toBeNull()
      held.push({ view: chunk, copy: Buffer.from(chunk), release: lease!.hold() })
    })
    expect(held.length).toBeGreaterThan(10)
    // Every view still shows what was read into it: no later read landed in a held buffer.
    for (const h of held) expect(h.view.equals(h.copy)).toBe(true)
    expect(Buffer.concat(held.map((h) => h.view)).equals(BODY)).toBe(true)
    for (const h of held) h.release()
  })

  test('chunks nobody holds are read into one buffer over and over', async () => {
    const backing = new Set<ArrayBufferLike>()
    let n = 0
    let bytes = 0
    await fetchBody((chunk) => {
      backing.add(chunk.buffer)
      n++
      bytes += chunk.length
    })
    expect(n).toBeGreaterThan(10)
    expect(bytes).toBe(BODY.length)
    expect(backing.size).toBe(1)
  })

  test('a released buffer is used again: holding each chunk until the next one needs two buffers in turn', async () => {
    const backing = new Set<ArrayBufferLike>()
    let prev: (() => void) | null = null
    let got = Buffer.alloc(0)
    await fetchBody((chunk, lease) => {
      backing.add(chunk.buffer)
      got = Buffer.concat([got, chunk])
      const release = lease!.hold()
      prev?.()
      prev = release
    })
    prev!()
    expect(got.equals(BODY)).toBe(true)
    expect(backing.size).toBeLessThanOrEqual(3)
  })

  test('a close-delimited body ends with the connection (the end of input still reaches the parser)', async () => {
    const parts: Buffer[] = []
    await fetchBody((chunk) => parts.push(Buffer.from(chunk)), '/close')
    expect(Buffer.concat(parts).equals(BODY)).toBe(true)
  })
})
