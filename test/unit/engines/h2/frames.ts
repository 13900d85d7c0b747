// HTTP/2 frames by hand (RFC 9113 §4, §6; HPACK literals of RFC 7541 §6.2.2), for the tests that
// must send what no well-behaved client library would: floods, resets, CONTINUATION chains, a
// GOAWAY below a stream, a request without :authority. Over real sockets on loopback only.
import net from 'node:net'

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const
export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(9 + payload.length)
  b.writeUIntBE(payload.length, 0, 3)
  b[3] = type
  b[4] = flags
  b.writeUInt32BE(streamId & 0x7fffffff, 5)
  payload.copy(b, 9)
  return b
}

export function settings(entries: [number, number][] = []): Buffer {
  const p = Buffer.alloc(entries.length * 6)
  entries.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6)
    p.writeUInt32BE(v, i * 6 + 2)
  })
  return frame(T.SETTINGS, 0, 0, p)
}
export const SETTINGS_ACK = frame(T.SETTINGS, F.ACK, 0)

export function rst(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4)
  p.writeUInt32BE(code)
  return frame(T.RST_STREAM, 0, streamId, p)
}

export function goaway(lastStreamId: number, code: number): Buffer {
  const p = Buffer.alloc(8)
  p.writeUInt32BE(lastStreamId)
  p.writeUInt32BE(code, 4)
  return frame(T.GOAWAY, 0, 0, p)
}

export function ping(n: number): Buffer {
  const p = Buffer.alloc(8)
  p.writeUInt32BE(n, 4)
  return frame(T.PING, 0, 0, p)
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1
  if (value < max) return [first | value]
  const out = [first | max]
  let v = value - max
  while (v >= 128) {
    out.push((v % 128) + 128)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

/** A header block of literals without indexing, new names (0x00), no Huffman: plain to read on the wire. */
export function hpack(fields: readonly (readonly [string, string])[]): Buffer {
  const bytes: number[] = []
  for (const [n, v] of fields) {
    bytes.push(0x00, ...hpackInt(n.length, 7, 0))
    for (const c of Buffer.from(n, 'latin1')) bytes.push(c)
    bytes.push(...hpackInt(Buffer.byteLength(v, 'latin1'), 7, 0))
    for (const c of Buffer.from(v, 'latin1')) bytes.push(c)
  }
  return Buffer.from(bytes)
}

export const GET = (path = '/', authority: string | null = 'app.shop'): [string, string][] => [[':method', 'GET'], [':scheme', 'http'], [':path', path], ...(authority === null ? [] : ([[':authority', authority]] as [string, string][]))]

export function headers(streamId: number, fields: readonly (readonly [string, string])[], flags: number = F.END_HEADERS | F.END_STREAM): Buffer {
  return frame(T.HEADERS, flags, streamId, hpack(fields))
}

export interface Frame {
  readonly type: number
  readonly flags: number
  readonly streamId: number
  readonly payload: Buffer
}

/** Splits a byte stream into frames (after the server's side has no preface to skip). */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0)
  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk
    const out: Frame[] = []
    while (this.#buf.length >= 9) {
      const len = this.#buf.readUIntBE(0, 3)
      if (this.#buf.length < 9 + len) break
      out.push({ type: this.#buf[3]!, flags: this.#buf[4]!, streamId: this.#buf.readUInt32BE(5) & 0x7fffffff, payload: this.#buf.subarray(9, 9 + len) })
      this.#buf = this.#buf.subarray(9 + len)
    }
    return out
  }
}

export interface RawClient {
  readonly socket: net.Socket
  readonly frames: Frame[]
  /** Resolves when the server closed the connection (or it errored). */
  readonly closed: Promise<void>
  write(b: Buffer): boolean
  until(pred: (f: Frame[]) => boolean, ms?: number): Promise<boolean>
  goaway(): Frame | undefined
}

/** A raw HTTP/2 client: sends the preface and an empty SETTINGS, ACKs the server's (unless `ack` false), records frames (unless `read` false: a caller that never reads). */
export async function rawClient(port: number, o: { read?: boolean; ack?: boolean } = {}): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j))
  const frames: Frame[] = []
  const reader = new FrameReader()
  const closed = new Promise<void>((r) => {
    socket.once('close', () => r())
    socket.on('error', () => {})
  })
  if (o.read !== false)
    socket.on('data', (c: Buffer) => {
      for (const f of reader.push(c)) {
        frames.push(f)
        if (f.type === T.SETTINGS && !(f.flags & F.ACK) && !socket.destroyed && o.ack !== false) socket.write(SETTINGS_ACK)
      }
    })
  socket.write(Buffer.concat([PREFACE, settings()]))
  return {
    socket,
    frames,
    closed,
    write: (b) => (socket.destroyed ? false : socket.write(b)),
    async until(pred, ms = 3000) {
      const end = Date.now() + ms
      while (!pred(frames)) {
        if (Date.now() > end) return false
        await new Promise((r) => setTimeout(r, 10))
      }
      return true
    },
    goaway: () => frames.find((f) => f.type === T.GOAWAY),
  }
}

export const goawayCode = (f: Frame): number => f.payload.readUInt32BE(4)
export const goawayLastStreamId = (f: Frame): number => f.payload.readUInt32BE(0) & 0x7fffffff
/** `:status` of a response HEADERS frame that uses the static table (0x88 = 200 … 0x8e = 500) or a literal. */
export function statusOf(f: Frame): number | null {
  const b = f.payload[0]!
  const table: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 }
  if (table[b] !== undefined) return table[b]!
  // literal with indexed name 8 (:status): 0x48 (incremental), 0x08 (without), 0x18 (never)
  if ((b & 0x0f) === 8 || b === 0x48) {
    const len = f.payload[1]! & 0x7f
    return Number(f.payload.subarray(2, 2 + len).toString('latin1'))
  }
  return null
}

/**
 * A minimal raw HTTP/2 server for behaviours node:http2 cannot be made to show: it answers SETTINGS,
 * then calls `onHeaders(conn, streamId, connectionIndex)` for each request HEADERS frame.
 */
export async function rawServer(onHeaders: (sock: net.Socket, streamId: number, connIndex: number) => void): Promise<{ port: number; connections: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>()
  const state = { port: 0, connections: 0, close: async () => {} }
  const server = net.createServer((sock) => {
    const idx = state.connections++
    socks.add(sock)
    sock.once('close', () => socks.delete(sock))
    sock.on('error', () => {})
    const reader = new FrameReader()
    let prefaceLeft = PREFACE.length
    sock.write(settings())
    sock.on('data', (c: Buffer) => {
      if (prefaceLeft > 0) {
        const skip = Math.min(prefaceLeft, c.length)
        prefaceLeft -= skip
        c = c.subarray(skip)
      }
      for (const f of reader.push(c)) {
        if (f.type === T.SETTINGS && !(f.flags & F.ACK)) sock.write(SETTINGS_ACK)
        if (f.type === T.HEADERS) onHeaders(sock, f.streamId, idx)
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  state.port = (server.address() as net.AddressInfo).port
  state.close = () =>
    new Promise<void>((r) => {
      for (const s of socks) s.destroy()
      server.close(() => r())
    })
  return state
}

/** `:status: 200` from the static table, ending the stream. */
export const OK_HEADERS = (streamId: number): Buffer => frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, streamId, Buffer.from([0x88]))
