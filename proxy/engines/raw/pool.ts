import net from 'node:net'
import type { UpstreamPool } from '../../pipeline/index.js'
import { createMtlsDialer, type CredentialStore } from '../../tls/index.js'
import { closeParser, createParser, type ParseError, type Parser } from './llhttp.js'
import { splitAddress } from '../common/index.js'
import { RemoraError } from '../../errors/index.js'

export interface RawMtlsKey {
  readonly address: string // host:port
  readonly identities: readonly string[]
  readonly connectTimeoutMs: number
}

/** What one request/response needs to hear from its upstream connection. */
export interface ResponseHandler {
  /** The response head (never 1xx other than 101). Return 1 when no body can follow (HEAD). */
  onHead(statusCode: number, statusMessage: string, rawHeaders: string[], upgrade: boolean, keepAlive: boolean): number
  /**
   * A piece of the body. With `lease`, `chunk` lies in a read buffer the connection reuses for its
   * next read: whoever keeps the bytes past this call (a write that has not completed) takes
   * `lease.hold()` and calls what it returns once done with them.
   */
  onBody(chunk: Buffer, lease: ReadLease | null): void
  onComplete(trailers: string[] | null): void
  /** After a 101: the socket is the handler's now; `rest` are tunnel bytes read with the head. */
  onUpgrade(socket: net.Socket, rest: Buffer): void
  /** The connection failed or closed before the response completed; `parse` for invalid HTTP. */
  onError(err: Error, parse: boolean): void
}

/** A connect failure (UF); `secureNaming` when the peer's SPIFFE ID is not the cluster's. */
/** A connection to the upstream could not be made: refused, timed out, or its TLS handshake or secure naming failed. */
export class UpstreamConnectError extends RemoraError<'REMORA_ERR_UPSTREAM_CONNECT' | 'REMORA_ERR_UPSTREAM_SECURE_NAMING'> {
  constructor(
    message: string,
    readonly reason: string,
    readonly secureNaming: boolean,
  ) {
    super(secureNaming ? 'REMORA_ERR_UPSTREAM_SECURE_NAMING' : 'REMORA_ERR_UPSTREAM_CONNECT', 503, message)
  }
}

const MAX_RESPONSE_HEADER_BYTES = 61_440
const KEEP_ALIVE_MS = 30_000
/** A server's keep-alive hint is cut by this much, so we never race its own close (undici does the same). */
const KEEP_ALIVE_MARGIN_MS = 1_000
const SOCKET_IDLE_MS = 300_000

/** A socket read into a reused buffer: `hold()` keeps the buffer out of reuse until its release runs. */
export interface ReadLease {
  hold(): () => void
}

/** Read buffers of plain TCP upstream reads (libuv reads up to 64 KiB at a time, as Node's default). */
export const TCP_READ_BUFFER_BYTES = 64 * 1024
/** Of TLS upstream reads: one TLS record's plaintext at most (16 KiB). */
export const TLS_READ_BUFFER_BYTES = 16 * 1024
/** Released read buffers kept for reuse, per size, across all connections. */
const FREE_READ_BUFFERS = 16

const freeBuffers = new Map<number, Buffer[]>()

function takeBuffer(size: number): Buffer {
  return freeBuffers.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size)
}

function giveBuffer(b: Buffer): void {
  let free = freeBuffers.get(b.length)
  if (free === undefined) freeBuffers.set(b.length, (free = []))
  if (free.length < FREE_READ_BUFFERS) free.push(b)
}

/**
 * The `onread` of one upstream socket (see engines/common/read-buffers.ts for why): Node reads
 * into the buffer installed here instead of allocating one per read. After each read the buffer
 * stays installed unless someone still holds bytes of it (a downstream write not yet completed);
 * then the next read goes into a free buffer and the held one returns to the free list when its
 * last holder is done. A buffer whose release never comes is simply left to the garbage collector.
 */
export class UpstreamReader implements ReadLease {
  #cur: { readonly buf: Buffer; holds: number }
  /** Where each read goes (the connection's parser); null before the connection exists. */
  sink: ((chunk: Buffer, lease: ReadLease) => void) | null = null
  /** Set after an upgrade: the bytes go to the socket's own stream (the tunnel pipes it), copied. */
  tunnel: net.Socket | null = null

  constructor(
    readonly size: number,
    private readonly onStray: () => void,
  ) {
    this.#cur = { buf: takeBuffer(size), holds: 0 }
  }

  /** The socket option: `net.connect({ onread })` / `tls.connect({ onread })`. */
  readonly onread = {
    buffer: (): Buffer => this.#next(),
    callback: (n: number, buf: Buffer): boolean => this.#read(n, buf),
  }

  hold(): () => void {
    const slot = this.#cur
    slot.holds++
    let done = false
    return () => {
      if (done) return
      done = true
      if (--slot.holds === 0 && slot !== this.#cur) giveBuffer(slot.buf)
    }
  }

  #read(n: number, buf: Buffer): boolean {
    const view = buf.subarray(0, n)
    if (this.tunnel !== null) return this.tunnel.push(Buffer.from(view))
    if (this.sink === null) {
      this.onStray() // bytes before any request: the connection cannot be trusted
      return false
    }
    this.sink(view, this)
    return true
  }

  #next(): Buffer {
    const cur = this.#cur
    if (cur.holds === 0) return cur.buf
    // Bytes of the current buffer are still held (a write not completed yet): the next read goes
    // into another buffer; the held one returns to the free list with its last release.
    this.#cur = { buf: takeBuffer(this.size), holds: 0 }
    return this.#cur.buf
  }
}

/** One keep-alive connection to an endpoint, with its own response parser. */
export class UpstreamConnection {
  readonly #parser: Parser
  #pairs: string[] = []
  #handler: ResponseHandler | null = null
  #informational = false
  #upgraded = false
  /** Bytes of a Content-Length body still to pass through without the parser (framing only). */
  #rawLeft = 0
  /** Requests this connection has carried (a reused one may have been closed by the server). */
  served = 0
  /** performance.now() after which this idle connection is not reused. */
  expiresAt = 0

  /** The lease of the read being parsed (reused buffers), for the parser's body callback. */
  #lease: ReadLease | null = null

  constructor(
    readonly socket: net.Socket,
    private readonly pool: RawPool,
    private readonly reader: UpstreamReader | null = null,
  ) {
    this.#parser = createParser('response', MAX_RESPONSE_HEADER_BYTES, {
      onHeaders: (pairs) => {
        for (const p of pairs) this.#pairs.push(p)
      },
      onHeadersComplete: (_maj, _min, headers, _method, _url, statusCode, statusMessage, upgrade, keepAlive) => {
        const raw = headers ?? this.#pairs
        this.#pairs = []
        const status = statusCode ?? 0
        if (status < 200 && status !== 101) {
          // 100 Continue and other 1xx: the sidecar answers Expect itself; nothing goes downstream.
          this.#informational = true
          return 1
        }
        const h = this.#handler
        if (h === null) return -1
        if (status === 101 && upgrade) this.#upgraded = true
        const r = h.onHead(status, statusMessage ?? '', raw, upgrade, keepAlive)
        if (r !== 0 || this.#upgraded || status === 204 || status === 304) return r
        const cl = plainContentLength(raw)
        if (cl > 0) {
          // 2 = "no body, stop here": execute() returns at the end of the head and the body is
          // counted off the raw bytes, never copied or parsed.
          this.#rawLeft = cl
          return 2
        }
        return 0
      },
      onBody: (chunk) => this.#handler?.onBody(chunk, this.#lease),
      onMessageComplete: () => {
        if (this.#rawLeft > 0) return // the raw body's end is counted in #onData
        if (this.#informational) {
          this.#informational = false
          this.#pairs = []
          return
        }
        let trailers: string[] | null = null
        if (this.#pairs.length > 0) {
          trailers = this.#pairs
          this.#pairs = []
        }
        if (this.#upgraded) return // onUpgrade follows, once execute() says where the tunnel starts
        const h = this.#handler
        this.#handler = null
        h?.onComplete(trailers)
      },
    })
    socket.setTimeout(SOCKET_IDLE_MS, () => socket.destroy())
    if (reader !== null) reader.sink = this.#onData
    else socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onError)
    socket.once('close', this.#onClose)
  }

  get busy(): boolean {
    return this.#handler !== null
  }

  /** Binds the next response on this connection to `h`. */
  begin(h: ResponseHandler): void {
    this.#handler = h
    this.served++
  }

  readonly #onData = (chunk: Buffer, lease: ReadLease | null = null): void => {
    let buf = chunk
    for (;;) {
      if (this.#rawLeft > 0) {
        const h = this.#handler
        if (h === null) {
          this.socket.destroy() // the exchange was abandoned mid-body: this connection is done
          return
        }
        const n = Math.min(this.#rawLeft, buf.length)
        this.#rawLeft -= n
        h.onBody(n === buf.length ? buf : buf.subarray(0, n), lease)
        if (this.#rawLeft === 0 && this.#handler === h) {
          this.#handler = null
          h.onComplete(null)
        }
        buf = buf.subarray(n)
        if (buf.length === 0) return
        continue
      }
      if (this.#handler === null && !this.#upgraded) {
        this.socket.destroy() // bytes nobody asked for: the connection cannot be trusted
        return
      }
      let ret: ReturnType<Parser['execute']>
      this.#lease = lease
      try {
        ret = this.#parser.execute(buf)
      } catch (err) {
        this.#fail(err as Error, false) // a throw from a callback: this exchange is lost, not the process
        return
      } finally {
        this.#lease = null
      }
      if (typeof ret !== 'number') {
        this.#fail(ret, true)
        return
      }
      if (this.#upgraded) {
        const rest = buf.subarray(ret)
        this.#toTunnel(lease !== null ? Buffer.from(rest) : rest) // the tunnel writes it later: not from a reused buffer
        return
      }
      if (this.#rawLeft === 0) return
      buf = buf.subarray(ret) // a head that announced a raw body ended at `ret`
      if (buf.length === 0) return
    }
  }

  /** After a 101 the socket leaves the pool and HTTP: the handler owns it, with the bytes read so far. */
  #toTunnel(rest: Buffer): void {
    const h = this.#handler!
    this.#handler = null
    if (this.reader !== null) {
      this.reader.sink = null
      this.reader.tunnel = this.socket
    } else this.socket.removeListener('data', this.#onData)
    this.socket.removeListener('end', this.#onEnd)
    this.socket.removeListener('error', this.#onError)
    this.socket.removeListener('close', this.#onClose)
    this.socket.setTimeout(0)
    this.socket.pause()
    this.pool.forget(this)
    closeParser(this.#parser)
    h.onUpgrade(this.socket, rest)
  }

  readonly #onEnd = (): void => {
    if (this.#handler !== null) {
      const err = this.#parser.finish() // a close-delimited body ends here
      if (err !== undefined) this.#fail(err, true)
      else if (this.#handler !== null) this.#fail(Object.assign(new Error('upstream closed the connection'), { code: 'UPSTREAM_CLOSED' }), false)
    }
    this.socket.destroy()
  }

  readonly #onError = (err: Error): void => {
    this.#fail(err, false)
    this.socket.destroy()
  }

  readonly #onClose = (): void => {
    this.pool.forget(this)
    closeParser(this.#parser)
    this.#fail(Object.assign(new Error('upstream connection closed'), { code: 'UPSTREAM_CLOSED' }), false)
  }

  #fail(err: Error | ParseError, parse: boolean): void {
    const h = this.#handler
    this.#handler = null
    this.socket.destroy()
    h?.onError(err, parse)
  }

  destroy(): void {
    this.#handler = null
    this.socket.destroy()
  }
}

/** Opens a socket; with `onread`, Node reads into the reader's buffers instead of fresh ones. */
type Connector = (onread: UpstreamReader['onread'] | null) => net.Socket

/** A response's Content-Length when it has one and no Transfer-Encoding (llhttp validated both); else 0. */
function plainContentLength(raw: readonly string[]): number {
  let cl = 0
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === 14 && n.toLowerCase() === 'content-length') cl = Number(raw[i + 1])
    else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') return 0
  }
  return cl
}

/**
 * One endpoint's connections (LIFO reuse, 30 s keep-alive). There is no cap and no queue: a request
 * that finds no idle connection opens one, as the route/cluster timeouts bound each request.
 */
export class RawPool implements UpstreamPool {
  readonly #idle: UpstreamConnection[] = []
  readonly #all = new Set<UpstreamConnection>()
  #pending = 0
  #closing = false
  #sweeper: NodeJS.Timeout | null = null

  constructor(
    readonly address: string,
    private readonly connector: Connector,
    private readonly readyEvent: 'connect' | 'secureConnect',
    private readonly connectTimeoutMs: number,
    /** Size of the reused read buffers of this pool's connections; null: Node allocates one per read. */
    private readonly readBufferBytes: number | null = null,
  ) {}

  get stats(): { connected: number; pending: number; running: number } {
    return { connected: this.#all.size, pending: this.#pending, running: this.#all.size - this.#idle.length }
  }

  /** An idle connection if there is one (most recently used first), else null. */
  takeIdle(): UpstreamConnection | null {
    while (this.#idle.length > 0) {
      const c = this.#idle.pop()!
      if (!c.socket.destroyed && c.socket.writable && c.expiresAt > performance.now()) return c
      c.destroy()
    }
    return null
  }

  /** A new connection, resolved once connected (and for mTLS, once the peer passed secure naming). */
  connect(): Promise<UpstreamConnection> {
    if (this.#closing) return Promise.reject(new UpstreamConnectError('pool closed', 'pool closed', false))
    this.#pending++
    return new Promise((resolve, reject) => {
      let socket: net.Socket
      const size = this.readBufferBytes
      const reader = size === null ? null : new UpstreamReader(size, () => socket.destroy())
      try {
        socket = this.connector(reader?.onread ?? null)
      } catch (err) {
        this.#pending--
        reject(new UpstreamConnectError(String(err), 'connect failed', false))
        return
      }
      let done = false
      const finish = (err: (Error & { code?: string }) | null): void => {
        if (done) return
        done = true
        this.#pending--
        clearTimeout(timer)
        socket.removeListener('error', finish)
        if (err) {
          socket.destroy()
          const sn = err.code === 'REMORA_ERR_UPSTREAM_SECURE_NAMING'
          reject(new UpstreamConnectError(err.message, sn ? err.message : err.code || 'TLS handshake failed', sn))
          return
        }
        const c = new UpstreamConnection(socket, this, reader)
        this.#all.add(c)
        resolve(c)
      }
      const timer = setTimeout(() => finish(Object.assign(new Error(`connect timeout after ${this.connectTimeoutMs} ms`), { code: 'connect timeout' })), this.connectTimeoutMs)
      socket.once(this.readyEvent, () => finish(null))
      socket.once('error', finish)
    })
  }

  /** A connection whose exchange completed cleanly goes back for reuse, within the server's keep-alive hint. */
  release(c: UpstreamConnection, keepAliveHintMs: number | null = null): void {
    const keep = keepAliveHintMs === null ? KEEP_ALIVE_MS : Math.min(KEEP_ALIVE_MS, keepAliveHintMs - KEEP_ALIVE_MARGIN_MS)
    if (this.#closing || c.socket.destroyed || keep <= 0) {
      c.destroy()
      return
    }
    c.expiresAt = performance.now() + keep
    this.#idle.push(c)
    this.#sweeper ??= setInterval(() => this.#sweep(), KEEP_ALIVE_MS / 3).unref()
  }

  #sweep(): void {
    const now = performance.now()
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const c = this.#idle[i]!
      if (c.expiresAt <= now) {
        this.#idle.splice(i, 1)
        c.destroy()
      }
    }
    if (this.#idle.length === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper)
      this.#sweeper = null
    }
  }

  forget(c: UpstreamConnection): void {
    this.#all.delete(c)
    const i = this.#idle.indexOf(c)
    if (i >= 0) this.#idle.splice(i, 1)
  }

  /** Idle connections close now; busy ones when their exchange is over (release destroys them). */
  async close(): Promise<void> {
    this.#closing = true
    for (const c of this.#idle.splice(0)) c.destroy()
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
  }

  async destroy(): Promise<void> {
    await this.close()
    for (const c of this.#all) c.destroy()
    this.#all.clear()
  }
}


/**
 * The raw engine's upstream pools, keyed like the node:http engine's (endpoint AND expected
 * identities), so a reused connection never skips secure naming. The mTLS connector reads the
 * current credentials at every handshake: a rotation applies to new connections.
 */
export class RawPoolRegistry {
  readonly #pools = new Map<string, RawPool>()
  constructor(private readonly creds: CredentialStore) {}

  mtls(key: RawMtlsKey, servername: string): RawPool {
    const id = `mtls|${key.address}|${[...key.identities].sort().join(',')}|${key.connectTimeoutMs}|${servername}`
    let pool = this.#pools.get(id)
    if (!pool) {
      const { host, port } = splitAddress(key.address)
      const connector = createMtlsDialer({ host, port, identities: key.identities, servername }, this.creds)
      pool = new RawPool(key.address, (onread) => connector(onread), 'secureConnect', key.connectTimeoutMs, TLS_READ_BUFFER_BYTES)
      this.#pools.set(id, pool)
    }
    return pool
  }

  plain(address: string, connectTimeoutMs: number): RawPool {
    const id = `plain|${address}|${connectTimeoutMs}`
    let pool = this.#pools.get(id)
    if (!pool) {
      const { host, port } = splitAddress(address)
      pool = new RawPool(address, (onread) => net.connect({ host, port, noDelay: true, ...(onread !== null ? { onread } : {}) }), 'connect', connectTimeoutMs, TCP_READ_BUFFER_BYTES)
      this.#pools.set(id, pool)
    }
    return pool
  }

  /** Closes pools not in `keep` (after a config swap); in-flight exchanges on them finish first. */
  retain(keep: ReadonlySet<UpstreamPool>): void {
    for (const [id, pool] of this.#pools) {
      if (!keep.has(pool)) {
        this.#pools.delete(id)
        pool.close().catch(() => {})
      }
    }
  }

  stats(): { key: string; connected: number; pending: number; running: number }[] {
    return [...this.#pools].map(([key, p]) => ({ key, ...p.stats }))
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(all.map((p) => p.destroy()))
  }
}
