import http, { type IncomingHttpHeaders } from 'node:http'
import type net from 'node:net'
import type { DownstreamResponse, ProxyErrorCode } from '../../pipeline/index.js'
import type { ContextRequest } from '../common/index.js'
import { headerLines, headersObject } from './headers.js'

/** Where a request body goes once the upstream side is ready; `false` from `data` = pause. */
export interface BodySink {
  data(chunk: Buffer): boolean
  end(trailers: readonly string[] | null): void
}

/** What a request needs from its downstream connection (implemented by the front). */
export interface DownstreamControl {
  readonly socket: net.Socket
  /** Back-pressure: stop/restart reading the downstream socket for this request's body. */
  holdReading(hold: boolean): void
  /** The response is complete (or abandoned): the connection decides what comes next. */
  responseFinished(keepAlive: boolean): void
  destroy(): void
}

const BODY_QUEUE_LIMIT = 64 * 1024

/**
 * One downstream request as the parser saw it. Its body is queued until the upstream side attaches
 * a sink (bounded: reading pauses beyond 64 KiB), then flows straight through with back-pressure.
 */
export class RawRequest implements ContextRequest {
  readonly headers: IncomingHttpHeaders
  readonly httpVersion: string
  /** Content-Length > 0 or chunked: a body follows the head. */
  readonly hasBody: boolean
  readonly chunked: boolean
  /** The Content-Length of a non-chunked body (0 when none): such a body bypasses the parser. */
  readonly contentLength: number
  /** All of the request, body included, has been read. */
  complete = false
  trailers: readonly string[] | null = null
  /** A framing error behind the head, found before anything went upstream: the answer is 400. */
  parserError: ProxyErrorCode | null = null
  /** Some of this request has been written upstream: a later framing error can only reset. */
  dispatched = false
  /** Bytes that followed an Upgrade request's head (the start of the tunnel). */
  upgradeHead: Buffer | null = null
  #queue: Buffer[] | null = null
  #queued = 0
  #sink: BodySink | null = null

  constructor(
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: readonly string[],
    versionMajor: number,
    versionMinor: number,
    readonly shouldKeepAlive: boolean,
    readonly upgrade: boolean,
    readonly socket: net.Socket,
    private readonly conn: DownstreamControl,
  ) {
    this.httpVersion = versionMajor === 1 && versionMinor === 1 ? '1.1' : `${versionMajor}.${versionMinor}`
    const h = headersObject(rawHeaders)
    this.headers = h
    const te = h['transfer-encoding']
    this.chunked = te !== undefined
    const cl = h['content-length']
    this.hasBody = this.chunked || (cl !== undefined && cl !== '0')
    // llhttp has already refused anything but one plain decimal Content-Length.
    this.contentLength = !this.chunked && cl !== undefined ? Number(cl) : 0
    this.complete = !this.hasBody
  }

  /** From the parser: a piece of the (de-chunked) body. */
  pushBody(chunk: Buffer): void {
    if (this.#sink !== null) {
      if (!this.#sink.data(chunk)) this.conn.holdReading(true)
      return
    }
    ;(this.#queue ??= []).push(chunk)
    this.#queued += chunk.length
    if (this.#queued > BODY_QUEUE_LIMIT) this.conn.holdReading(true)
  }

  /** From the parser: the message is complete (trailers for a chunked body, if any). */
  pushEnd(trailers: readonly string[] | null): void {
    this.complete = true
    this.trailers = trailers
    this.#sink?.end(trailers)
  }

  /** Attaches the upstream side; queued body parts go first. */
  attach(sink: BodySink): void {
    this.#sink = sink
    const q = this.#queue
    this.#queue = null
    this.#queued = 0
    let ok = true
    if (q !== null) for (const c of q) ok = sink.data(c) && ok
    if (this.complete && this.hasBody) sink.end(this.trailers)
    this.conn.holdReading(!ok)
  }

  /** The sink drained: read on. */
  resumeBody(): void {
    this.conn.holdReading(false)
  }

  detach(): void {
    this.#sink = null
  }
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'

/**
 * The downstream response: what stages use (statusCode, headersSent, destroyed, writeHead/end/
 * destroy for proxy-generated answers) plus the streaming calls of the raw upstream side.
 */
export class RawResponse implements DownstreamResponse {
  statusCode = 200
  headersSent = false
  finished = false
  #keepAlive: boolean
  /** Called once if the downstream connection goes away before the response is finished. */
  onAbort: (() => void) | null = null

  constructor(
    private readonly req: RawRequest,
    private readonly conn: DownstreamControl,
  ) {
    this.#keepAlive = req.shouldKeepAlive && !req.upgrade
  }

  get destroyed(): boolean {
    return this.conn.socket.destroyed
  }

  get socket(): net.Socket {
    return this.conn.socket
  }

  /** Keep the connection after this response? Decided when the head goes out. */
  get keepAlive(): boolean {
    return this.#keepAlive
  }

  /** For proxy-generated responses (sendProxyResponse): headers as a dictionary, body via end(). */
  writeHead(statusCode: number, headers: Record<string, string | number>): this {
    this.statusCode = statusCode
    let lines = ''
    for (const k in headers) {
      const v = headers[k]!
      if (k === 'connection') {
        if (String(v).toLowerCase() === 'close') this.#keepAlive = false
        continue
      }
      lines += `${k}: ${v}\r\n`
    }
    this.#pendingHead = `HTTP/1.1 ${statusCode} ${http.STATUS_CODES[statusCode] ?? ''}\r\n${lines}${this.#connectionLine()}\r\n`
    this.headersSent = true
    return this
  }

  #pendingHead: string | null = null

  end(body?: string): this {
    if (this.finished) return this
    const head = this.#pendingHead
    this.#pendingHead = null
    const s = this.conn.socket
    if (!s.destroyed) {
      s.cork()
      if (head !== null) s.write(head, 'latin1')
      if (body) s.write(body, 'utf8')
      s.uncork()
    }
    this.#finish()
    return this
  }

  destroy(): this {
    this.conn.destroy()
    return this
  }

  /** `Connection` for the head: close when the request is not complete yet, or when asked to. */
  #connectionLine(): string {
    if (this.#keepAlive && !this.req.complete) this.#keepAlive = false
    if (!this.#keepAlive) return 'connection: close\r\n'
    return this.req.httpVersion === '1.0' ? 'connection: keep-alive\r\n' : ''
  }

  /** 100 Continue, once the request is authorized and its upstream is ready. */
  writeContinue(): void {
    if (!this.headersSent && !this.conn.socket.destroyed) this.conn.socket.write(CONTINUE)
  }

  /** A proxied head: status line and filtered headers; `framing` is the body's framing line(s). */
  writeProxiedHead(statusCode: number, statusMessage: string, lines: string, framing: string, extra: Readonly<Record<string, string>> | null, closeDelimited: boolean): boolean {
    this.statusCode = statusCode
    this.headersSent = true
    if (closeDelimited) this.#keepAlive = false
    const more = extra !== null ? headerLines(extra) : ''
    this.#cork()
    return this.conn.socket.write(`HTTP/1.1 ${statusCode} ${statusMessage}\r\n${lines}${more}${framing}${this.#connectionLine()}\r\n`, 'latin1')
  }

  /**
   * Writes raw bytes (body data, chunk frames, a 101 head); false = wait for 'drain'. `done` runs
   * once the socket is finished with them (written, or failed): a reused read buffer is free again.
   */
  write(data: Buffer | string, done?: () => void): boolean {
    this.#cork()
    return done === undefined ? this.conn.socket.write(data) : this.conn.socket.write(data, done)
  }

  /** Several buffers as one TLS record / one writev; `done` as for write(), after the last part. */
  writev(parts: readonly (Buffer | string)[], done?: () => void): boolean {
    const s = this.conn.socket
    this.#cork()
    let ok = true
    const last = parts.length - 1
    for (let i = 0; i < last; i++) ok = s.write(parts[i]!) && ok
    if (last >= 0) ok = (done === undefined ? s.write(parts[last]!) : s.write(parts[last]!, done)) && ok
    else done?.()
    return ok
  }

  onceDrain(fn: () => void): void {
    this.conn.socket.once('drain', fn)
  }

  /** Cancels an onceDrain() that has not fired. */
  offDrain(fn: () => void): void {
    this.conn.socket.removeListener('drain', fn)
  }

  /** The response is complete; `tail` is the last framing (the chunked terminator and trailers). */
  finishProxied(tail: string | null): void {
    if (this.finished) return
    if (tail !== null && !this.conn.socket.destroyed) this.conn.socket.write(tail, 'latin1')
    this.#finish()
  }

  #corked = false

  /**
   * Writes of one tick leave as one writev (one TLS record for a small response), as node:http's
   * ServerResponse does: head, body and the chunked terminator usually come from one upstream read.
   */
  #cork(): void {
    if (this.#corked) return
    this.#corked = true
    const s = this.conn.socket
    s.cork()
    process.nextTick(() => {
      this.#corked = false
      s.uncork()
    })
  }

  /** The connection now belongs to a tunnel: nothing more is parsed or written as HTTP. */
  markTunnelled(): void {
    this.finished = true
  }

  #finish(): void {
    this.finished = true
    this.onAbort = null
    this.conn.responseFinished(this.#keepAlive && this.req.complete)
  }
}
