import http2, { type Http2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { EventEmitter, on } from 'node:events'
import type { DownstreamResponse } from '../../pipeline/index.js'
import type { ContextRequest } from '../common/index.js'
import { GRPC_STATUS, httpToGrpcStatus, type GrpcFacts } from '../../telemetry/index.js'

// One HTTP/2 stream as the pipeline sees it: the request (pseudo-headers mapped to what an
// HTTP/1.1 request carries, so sanitize, authz and route run unchanged) and the response every
// proxy-generated answer is written to (sendProxyResponse), which for a gRPC call becomes what
// Envoy sends: a trailers-only response, HTTP 200 with grpc-status and grpc-message.

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = http2.constants

/** Request header fields RFC 9113 §8.2.2 forbids in HTTP/2 (Node refuses to send them): never written to a stream. */
export const H2_CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host'])

/** The pseudo-headers of a request, and its regular fields as node:http would present them. */
export interface H2RequestHead {
  readonly method: string
  readonly path: string | undefined
  readonly authority: string | undefined
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: string[]
  /** Regular fields (no pseudo-headers) and RFC 9113 §6.5.2 size of the whole list (name + value + 32 each). */
  readonly fieldCount: number
  readonly listSize: number
}

/**
 * Splits a received header list. `:authority` becomes `host` when the request has none; when it
 * has both and they differ, both stay in rawHeaders, so sanitize answers "more than one Host"
 * (RFC 9113 §8.3.1: such a request is malformed, and which one the app would read is unknown).
 */
export function requestHead(headers: IncomingHttpHeaders, raw: readonly string[]): H2RequestHead {
  let method = 'GET'
  let path: string | undefined
  let authority: string | undefined
  const rawHeaders: string[] = []
  let listSize = 0
  let hostValue: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    listSize += name.length + value.length + 32
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':method') method = value
      else if (name === ':path') path = value
      else if (name === ':authority') authority = value
      continue
    }
    if (name === 'host') hostValue = value
    rawHeaders.push(name, value)
  }
  const fieldCount = rawHeaders.length / 2
  const out: IncomingHttpHeaders = {}
  for (const k in headers) if (k.charCodeAt(0) !== 58) out[k] = headers[k]
  if (authority !== undefined) {
    if (hostValue === undefined) {
      out.host = authority
      rawHeaders.push('host', authority)
    } else if (hostValue.toLowerCase() !== authority.toLowerCase()) rawHeaders.push('host', authority)
  }
  return { method, path, authority, headers: out, rawHeaders, fieldCount, listSize }
}

/** The request side of a stream, as createContext and the stages read it. */
export class H2Request implements ContextRequest {
  readonly httpVersion = '2.0'
  readonly method: string
  readonly url: string | undefined
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: string[]
  constructor(
    readonly stream: ServerHttp2Stream,
    head: H2RequestHead,
    /** The connection's socket as the listener handed it over (its connection info is keyed on it). */
    readonly socket: { readonly remoteAddress?: string; readonly remotePort?: number; readonly localPort?: number },
  ) {
    this.method = head.method
    this.url = head.path
    this.headers = head.headers
    this.rawHeaders = head.rawHeaders
  }
}

/** gRPC's percent-encoding of grpc-message: bytes outside 0x20..0x7E, and `%`, as %XX (UTF-8). */
export function encodeGrpcMessage(text: string): string {
  let out = ''
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  return out
}

/** Header names to a stream: lower-case, no connection-specific fields, no pseudo-headers from callers. */
function streamHeaders(h: Record<string, string | number>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  for (const k in h) {
    const n = k.toLowerCase()
    if (H2_CONNECTION_SPECIFIC.has(n) || n.charCodeAt(0) === 58) continue
    out[n] = h[k]
  }
  return out
}

/**
 * RST_STREAM now, with CANCEL or INTERNAL_ERROR. Not `stream.close(code)`: it ends the writable side
 * first, and once that END_STREAM is out the reset is ignored, so a truncated body would look whole.
 */
export function resetStream(stream: Http2Stream, code: number): void {
  if (stream.destroyed) return
  // node:http2 resets with CANCEL for an instance of its internal AbortError, INTERNAL_ERROR for any other error.
  stream.destroy(code === NGHTTP2_CANCEL ? new AbortErrorClass() : new Error('stream reset'))
}

/**
 * Node's internal AbortError class, which no module exports: `events.on` throws one synchronously
 * for a signal that is already aborted (the same on Node 20 and 26).
 */
const AbortErrorClass: new () => Error = (() => {
  const ac = new AbortController()
  ac.abort()
  try {
    on(new EventEmitter(), 'never', { signal: ac.signal })
  } catch (err) {
    if (err instanceof Error && err.name === 'AbortError') return err.constructor as new () => Error
  }
  throw new Error('node:events did not throw its AbortError for an aborted signal')
})()

export const kLocalReset = Symbol('remora.h2.localReset')
type MarkedStream = ServerHttp2Stream & { [kLocalReset]?: boolean }

/**
 * The response side of a stream. `writeHead` + `end` (what sendProxyResponse calls) answer a plain
 * HTTP/2 request as they would on HTTP/1.1, without `connection` (meaningless per stream), and a
 * gRPC call as Envoy's local replies do: `:status` 200, `content-type: application/grpc`,
 * `grpc-status` mapped from the HTTP status (403 → 7 PERMISSION_DENIED), `grpc-message` the body,
 * all in one HEADERS frame that ends the stream; the sidecar's own headers (flag, code, denial
 * reason) ride along. `statusCode` is then 200, what the caller received, as in Envoy's access log.
 */
export class H2Response implements DownstreamResponse {
  statusCode = 200
  /** The call's facts when it is gRPC (content-type application/grpc*); set by the front. */
  grpc: GrpcFacts | null = null
  #head: Record<string, string | number> | null = null
  constructor(readonly stream: ServerHttp2Stream) {}
  get headersSent(): boolean {
    return this.#head !== null || this.stream.headersSent
  }
  get destroyed(): boolean {
    return this.stream.destroyed
  }
  writeHead(statusCode: number, headers: Record<string, string | number>): this {
    this.statusCode = statusCode
    this.#head = headers
    return this
  }
  end(body?: string): this {
    const s = this.stream
    if (s.destroyed || s.headersSent) return this
    const h = streamHeaders(this.#head ?? {})
    if (this.grpc !== null) {
      const status = this.statusCode === 200 ? GRPC_STATUS.UNKNOWN : httpToGrpcStatus(this.statusCode)
      delete h['content-length']
      h[':status'] = 200
      h['content-type'] = 'application/grpc'
      h['grpc-status'] = String(status)
      const msg = (body ?? '').trim()
      if (msg) h['grpc-message'] = encodeGrpcMessage(msg)
      this.grpc.status = status
      this.statusCode = 200
      s.respond(h, { endStream: true })
      return this
    }
    h[':status'] = this.statusCode
    if (body) {
      s.respond(h)
      s.end(body)
    } else s.respond(h, { endStream: true })
    return this
  }
  /** Resets the stream (RST_STREAM), marked as the sidecar's own so it never counts as a caller's reset. */
  reset(code: number = NGHTTP2_INTERNAL_ERROR): void {
    const s = this.stream as MarkedStream
    if (s.destroyed) return
    s[kLocalReset] = true
    resetStream(s, code)
  }
  destroy(): this {
    this.reset()
    return this
  }
}

/** Whether the sidecar itself reset this stream (H2Response.reset). */
export function isLocalReset(stream: ServerHttp2Stream): boolean {
  return (stream as MarkedStream)[kLocalReset] === true
}
