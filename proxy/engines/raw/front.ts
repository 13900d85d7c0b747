import net from 'node:net'
import type { Direction, Handler, ProxyErrorCode } from '../../pipeline/index.js'
import { createContext, DEFAULT_FRONT_LIMITS, parserErrorCode, rawResponse, timeoutSweepMs, type FrontLimits, type FrontOptions } from '../common/index.js'
import { closeParser, createParser, METHODS, type ParseError, type Parser } from './llhttp.js'
import { RawRequest, RawResponse, type DownstreamControl } from './exchange.js'

/** After a refusal (431, 400, 408 before a request exists): how long the rest of the input is discarded before the close. */
const REFUSED_LINGER_MS = 1000

interface Exchange {
  readonly req: RawRequest
  readonly res: RawResponse
}

/**
 * One downstream connection: llhttp finds each request's head and body boundaries, the pipeline
 * runs per request, one at a time. Pipelined requests are not parsed ahead: the parser stops at the
 * end of each message, what follows stays unparsed (`#backlog`, at most one socket read) and reading
 * pauses until the request in hand is answered, so 10,000 pipelined requests cost one at a time.
 */
class DownstreamConnection implements DownstreamControl {
  readonly #parser: Parser
  /** Header pairs and URL flushed before onHeadersComplete (node's parserOnHeaders). */
  #pairs: string[] = []
  #url = ''
  /** The request whose head or body the parser is in; null between messages. */
  #parsing: Exchange | null = null
  /** Requests parsed but not answered yet; the first one is in the pipeline. */
  readonly #queue: Exchange[] = []
  #active: Exchange | null = null
  /** Reasons to stop reading: body back-pressure, pipelined requests waiting. */
  #holdBody = false
  #holdQueue = false
  #paused = false
  /** No more HTTP on this connection (upgrade, framing error, close decided). */
  #stopped = false
  #pendingError: ProxyErrorCode | null = null
  /** Bytes of a Content-Length body still to pass through without the parser (framing only). */
  #rawLeft = 0
  /** An Upgrade request parsed on this connection: llhttp stops once it is complete. */
  #upgrade: Exchange | null = null
  #closed = false
  /** Bytes read after a message end while a request was in hand: parsed once it is answered. */
  #backlog: Buffer | null = null
  /** The caller's FIN arrived while a backlog was waiting. */
  #ended = false
  /** A header-count refusal from onHeadersComplete (llhttp reports it as HPE_CB_HEADERS_COMPLETE). */
  #limitError: ProxyErrorCode | null = null
  /** performance.now() since when a request head is awaited (accept, or a head's first byte); 0 when none is. */
  headSince = performance.now()
  /** A byte of the awaited head has arrived: its timeout is a 408, not a silent close. */
  headStarted = false
  /** performance.now() since when a keep-alive connection has had nothing in flight and nothing started; 0 otherwise. */
  idleSince = 0

  constructor(
    readonly front: RawFront,
    readonly socket: net.Socket,
  ) {
    const limits = front.limits
    const maxHeaderFields = limits.maxRequestHeadersCount * 2
    this.#parser = createParser('request', limits.maxRequestHeadersBytes, {
      onMessageBegin: () => {
        // Node's headersTimeout restarts at a head's first byte too: the two engines keep one rule.
        this.headSince = performance.now()
        this.headStarted = true
        this.idleSince = 0
      },
      onHeaders: (pairs, url) => {
        for (const p of pairs) this.#pairs.push(p)
        this.#url += url
      },
      onHeadersComplete: (maj, min, headers, method, url, _s, _m, upgrade, keepAlive) => {
        const raw = headers ?? this.#pairs
        const target = url ?? this.#url
        this.#pairs = []
        this.#url = ''
        this.headSince = 0
        this.headStarted = false
        if (raw.length > maxHeaderFields) {
          // Refused whole, before a request exists: no stage ever sees a copy the app would not.
          this.#limitError = 'REMORA_ERR_TOO_MANY_HEADERS'
          return -1
        }
        // llhttp also parses RTSP/ICE requests (ANNOUNCE … RTSP/1.0): a method outside node:http's
        // table is not HTTP, and the pipeline answers it 400 before anything goes upstream.
        const name = method === undefined ? undefined : METHODS[method]
        const req = new RawRequest(name ?? 'UNKNOWN', target, raw, maj, min, keepAlive, upgrade, socket, this)
        if (name === undefined) req.parserError = 'REMORA_ERR_BAD_REQUEST'
        const ex: Exchange = { req, res: new RawResponse(req, this) }
        this.#parsing = ex
        if (upgrade) this.#upgrade = ex
        this.#queue.push(ex)
        if (this.#queue.length > 1) this.#holdQueue = true
        if (!upgrade && req.contentLength > 0) {
          // 2 = "no body, stop here" for llhttp: execute() returns at the end of the head and the
          // body is counted off the raw bytes, never copied or parsed.
          this.#rawLeft = req.contentLength
          return 2
        }
        // A request without a body: stop at its end too, so that a pipelined one behind it is not
        // parsed before this one is answered (#consume keeps the rest as the backlog).
        return upgrade || req.chunked ? 0 : 2
      },
      onBody: (chunk) => this.#parsing?.req.pushBody(chunk),
      onMessageComplete: () => {
        if (this.#rawLeft > 0) return // the raw body's end is counted in #consume
        const ex = this.#parsing
        this.#parsing = null
        let trailers: string[] | null = null
        if (this.#pairs.length > 0) {
          trailers = this.#pairs
          this.#pairs = []
          this.#url = ''
        }
        ex?.req.pushEnd(trailers)
      },
    })
    socket.setNoDelay(true)
    socket.setTimeout(limits.streamIdleTimeoutMs, () => socket.destroy())
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', () => socket.destroy())
    socket.once('close', this.#onClose)
  }

  get idle(): boolean {
    return this.#active === null && this.#queue.length === 0
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#stopped) return
    if (this.#backlog !== null) {
      // A read that was under way when reading paused: behind the backlog, in order.
      this.#backlog = Buffer.concat([this.#backlog, chunk])
      return
    }
    this.#consume(chunk)
    this.#next()
    this.#applyHold()
  }

  /** Heads (and chunked bodies) through llhttp; Content-Length bodies counted off as they are. */
  #consume(chunk: Buffer): void {
    let buf = chunk
    while (buf.length > 0 && !this.#stopped) {
      if (this.#rawLeft === 0 && this.#parsing === null && this.#queue.length > 0) {
        // Between messages with a request in hand: the rest waits, unparsed (reading is paused).
        this.#backlog = buf
        return
      }
      if (this.#rawLeft > 0) {
        const ex = this.#parsing!
        const n = Math.min(this.#rawLeft, buf.length)
        this.#rawLeft -= n
        ex.req.pushBody(n === buf.length ? buf : buf.subarray(0, n))
        if (this.#rawLeft === 0) {
          this.#parsing = null
          ex.req.pushEnd(null)
        }
        buf = buf.subarray(n)
        continue
      }
      let ret: ReturnType<Parser['execute']>
      try {
        ret = this.#parser.execute(buf)
      } catch (err) {
        // A throw from our own parser callbacks: a bug, never a reason to take the process down.
        this.front.onInternalError(err)
        this.socket.destroy()
        return
      }
      if (typeof ret !== 'number') {
        this.#onParseError(ret)
        return
      }
      if (this.#upgrade !== null && this.#upgrade.req.complete) {
        // llhttp stops after an Upgrade request: what follows is the tunnel's (kept for it, unread).
        if (ret < buf.length) this.#upgrade.req.upgradeHead = buf.subarray(ret)
        this.#stop(true)
        return
      }
      if (ret <= 0) return
      buf = buf.subarray(ret) // a head that announced a raw body, or a message without one, ended at `ret`
    }
  }

  #onParseError(err: ParseError): void {
    const code = this.#limitError ?? parserErrorCode(err.code)
    const ex = this.#parsing
    this.#stop(false)
    if (ex !== null) {
      // Inside a body. Not sent upstream yet: the pipeline answers 400; otherwise only a reset is honest.
      if (ex.req.dispatched) this.socket.destroy()
      else ex.req.parserError = code
      return
    }
    if (this.idle) this.#refuse(code, this.#limitError ?? err.code)
    else this.#pendingError = code // answered once the requests before it are done
  }

  /** A head the parser refused: no request exists, so answer directly, log it, and close. */
  #refuse(code: ProxyErrorCode, parserCode: string): void {
    const s = this.socket
    if (!s.writable || parserCode === 'ECONNRESET') {
      s.destroy()
      return
    }
    this.front.onParserError({ code, parserCode, remote: `${s.remoteAddress ?? ''}:${s.remotePort ?? 0}`, direction: this.front.direction })
    s.end(rawResponse(code))
    // A lingering close, bounded: what the caller still sends is read and discarded (so that no
    // reset destroys the answer before it is read) for at most a second, however long it keeps sending.
    this.headSince = 0
    setTimeout(() => s.destroy(), REFUSED_LINGER_MS).unref()
  }

  /** No more HTTP from this socket. A tunnel gets the unread bytes; otherwise they are discarded. */
  #stop(tunnel: boolean): void {
    this.#stopped = true
    this.socket.removeListener('data', this.#onData)
    this.#paused = tunnel
    if (tunnel) this.socket.pause()
    else this.socket.resume()
  }

  readonly #onEnd = (): void => {
    this.#ended = true
    // Requests already read stay owed their answers, in order: the end applies after the backlog.
    if (this.#backlog !== null && !this.#stopped) return
    this.#endOfInput()
  }

  #endOfInput(): void {
    const parsing = this.#parsing
    if (!this.#stopped && parsing !== null) {
      // The client stopped in the middle of a request: a 400 if nothing went upstream, else a reset.
      if (parsing.req.dispatched) {
        this.socket.destroy()
        return
      }
      parsing.req.parserError = 'REMORA_ERR_BAD_FRAMING'
    }
    this.#stopped = true
    // The client is done sending; answer what is in flight, then close.
    if (this.idle && !this.socket.destroyed) this.socket.end()
  }

  /** The request head timeout fired: 408 for a head that started, a silent close for a connection that sent nothing. */
  headTimeout(): void {
    this.headSince = 0
    if (!this.headStarted || !this.idle || this.#stopped) {
      this.socket.destroy()
      return
    }
    this.#stop(false)
    this.#refuse('REMORA_ERR_REQUEST_TIMEOUT', 'REMORA_ERR_REQUEST_TIMEOUT')
  }

  readonly #onClose = (): void => {
    this.#closed = true
    this.#stopped = true
    closeParser(this.#parser)
    this.front.forget(this)
    const ex = this.#active
    if (ex !== null && !ex.res.finished) {
      const abort = ex.res.onAbort
      ex.res.onAbort = null
      abort?.()
    }
  }

  /** Starts the next parsed request when none is in the pipeline. */
  #next(): void {
    if (this.#active !== null || this.#queue.length === 0 || this.#closed) return
    const ex = this.#queue[0]!
    this.#active = ex
    this.#holdQueue = this.#queue.length > 1
    const ctx = createContext(this.front.direction, ex.req, ex.res, ex.req.upgrade && isWebSocket(ex.req) ? this.socket : null)
    this.front
      .handler()(ctx)
      .catch(() => this.socket.destroy())
      .finally(() => {
        // The pipeline is done; a response it did not finish cannot be finished by anyone.
        if (!ex.res.finished) this.socket.destroy()
      })
  }

  holdReading(hold: boolean): void {
    this.#holdBody = hold
    this.#applyHold()
  }

  #applyHold(): void {
    if (this.#stopped) return
    const pause = this.#holdBody || this.#holdQueue || this.#backlog !== null
    if (pause === this.#paused) return
    this.#paused = pause
    if (pause) this.socket.pause()
    else this.socket.resume()
  }

  responseFinished(keepAlive: boolean): void {
    const ex = this.#queue.shift()
    this.#active = null
    this.#holdBody = false
    ex?.req.detach()
    if (this.#closed) return
    if (!keepAlive) {
      this.#stop(false)
      this.socket.end()
      return
    }
    if (this.#backlog !== null && !this.#stopped) {
      const b = this.#backlog
      this.#backlog = null
      this.#consume(b)
      if (this.#backlog === null && this.#ended && !this.#stopped) this.#endOfInput()
    }
    if (this.#queue.length === 0) {
      if (this.#pendingError !== null) {
        const code = this.#pendingError
        this.#pendingError = null
        this.#refuse(code, code)
        return
      }
      if (this.#stopped) {
        this.socket.end()
        return
      }
    }
    if (this.#queue.length === 0 && !this.headStarted) this.idleSince = performance.now()
    this.#next()
    this.#applyHold()
  }

  destroy(): void {
    this.socket.destroy()
  }
}

function isWebSocket(req: RawRequest): boolean {
  const u = req.headers.upgrade
  return typeof u === 'string' && u.toLowerCase() === 'websocket'
}

export type RawFrontOptions = FrontOptions

/**
 * The raw engine's front of a listener: a net.Server that is handed sockets (the inbound listener
 * emits 'connection' after classification/handshake) or listens itself (outbound).
 */
export class RawFront extends net.Server {
  readonly direction: Direction
  readonly handler: () => Handler
  readonly onParserError: FrontOptions['onParserError']
  readonly onInternalError: (err: unknown) => void
  readonly limits: FrontLimits
  readonly #conns = new Set<DownstreamConnection>()
  #sweeper: NodeJS.Timeout | null = null

  constructor(opts: RawFrontOptions) {
    // allowHalfOpen: a client that shuts down its sending side still gets its answer.
    super({ noDelay: true, allowHalfOpen: true })
    this.direction = opts.direction
    this.handler = opts.handler
    this.onParserError = opts.onParserError
    this.onInternalError = opts.onInternalError ?? (() => {})
    this.limits = opts.limits ?? DEFAULT_FRONT_LIMITS
    const every = timeoutSweepMs(this.limits)
    this.on('connection', (socket: net.Socket) => {
      this.#conns.add(new DownstreamConnection(this, socket))
      // One timer per front, not per connection: connections over the head or idle timeout are swept
      // (a tenth of the shorter timeout late at most, as node:http's connectionsCheckingInterval).
      this.#sweeper ??= setInterval(() => this.#sweep(), every).unref()
    })
  }

  #sweep(): void {
    const now = performance.now()
    const head = now - this.limits.requestHeadersTimeoutMs
    const idle = now - this.limits.idleTimeoutMs
    for (const c of this.#conns) {
      if (c.headSince !== 0 && c.headSince <= head) c.headTimeout()
      else if (c.idleSince !== 0 && c.idleSince <= idle) c.destroy()
    }
    if (this.#conns.size === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper)
      this.#sweeper = null
    }
  }

  forget(c: DownstreamConnection): void {
    this.#conns.delete(c)
  }

  closeIdleConnections(): void {
    for (const c of this.#conns) if (c.idle) c.destroy()
  }

  /** Every connection, tunnels included (shutdown). */
  closeAllConnections(): void {
    for (const c of this.#conns) c.destroy()
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
    this.#sweeper = null
  }
}

export function createRawFront(opts: RawFrontOptions): RawFront {
  return new RawFront(opts)
}
