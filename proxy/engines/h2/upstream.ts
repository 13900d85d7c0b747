import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { FLAGS, proxyError, responseExtras, type Handler, type RequestContext, type RouteTarget } from '../../pipeline/index.js'
import type { CredentialStore } from '../../tls/index.js'
import { bodyBytesForwarded, connectionNamed, passesResponseHeader, upstreamFailure, type UpstreamFailure } from '../common/index.js'
import { H2_CONNECTION_SPECIFIC, H2Response, isLocalReset, resetStream } from './exchange.js'
import { GrpcMessageCounter } from './grpc-frames.js'
import { H2SessionPool, type H2Session } from './sessions.js'

// The HTTP/2 terminal: forwards a stream to the route's target on a shared session (h2c prior
// knowledge to the local app, ALPN h2 over mTLS to a peer sidecar), streams both bodies with
// HTTP/2 flow control (back-pressure both ways, nothing buffered whole), passes the response
// trailers on (grpc-status, grpc-message), and counts gRPC messages as they pass.

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants

/** RFC 9113 §7 error code names, for the reset reason in the access log. */
const H2_ERROR_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED']
export const h2ErrorName = (code: number): string => H2_ERROR_NAMES[code] ?? `0x${code.toString(16)}`

export interface H2UpstreamStats {
  /** Sessions in the pool now, by key (`h2c|address` or `h2|address|identities|sni`). */
  readonly sessions: readonly { key: string; established: boolean; streams: number }[]
  /** Sessions made since the start: with reuse, far fewer than requests. */
  readonly sessionsCreated: number
  /** Requests sent again on a new session because the first one was refused unprocessed (REFUSED_STREAM, above a GOAWAY's last stream). */
  readonly retries: number
}

export interface H2Upstream {
  /** The terminal handler for HTTP/2 downstream requests (ctx.req.httpVersion '2.0'). */
  readonly handler: Handler
  stats(): H2UpstreamStats
  /** After a config swap: closes the sessions to targets no cluster names any more (see H2SessionPool.retain). */
  retain(targets: Iterable<RouteTarget>): number
  close(): Promise<void>
}

/** What one attempt ended with: done (answered, or the caller left), or a failure before the response head. */
type Outcome = { readonly done: true } | { readonly done: false; readonly failure: UpstreamFailure; readonly unprocessed: boolean; readonly cause?: unknown }
const DONE: Outcome = { done: true }

function requestHeaders(ctx: RequestContext): OutgoingHttpHeaders {
  const h = ctx.headers
  const out: OutgoingHttpHeaders = { ':method': ctx.method, ':path': ctx.path + ctx.query }
  for (const k in h) if (!H2_CONNECTION_SPECIFIC.has(k)) out[k] = h[k]
  out[':authority'] = typeof h.host === 'string' ? h.host : ctx.authority
  // `te: trailers` is the one hop-by-hop value HTTP/2 keeps (RFC 9113 §8.2.2), and gRPC needs it to
  // tell a trailer-capable path; sanitize drops every `te`, so it is restored from the caller's.
  const te = ctx.req.headers.te
  if (typeof te === 'string' && /(^|,)\s*trailers\s*(;|,|$)/i.test(te)) out.te = 'trailers'
  return out
}

/** Response headers or trailers for the caller: no pseudo-headers but `:status`, no connection-specific or Connection-named fields, none of the sidecar's own from the app. */
function passOn(h: IncomingHttpHeaders, fromApp: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  const named = connectionNamed(h.connection)
  for (const k in h) {
    if (k.charCodeAt(0) === 58 /* : */ || H2_CONNECTION_SPECIFIC.has(k) || k === 'te') continue
    const v = h[k]
    if (v === undefined || !passesResponseHeader(k, named, fromApp)) continue
    out[k] = v
  }
  return out
}

function grpcStatusOf(h: IncomingHttpHeaders): number | null {
  const v = h['grpc-status']
  if (typeof v !== 'string' || !/^\d{1,2}$/.test(v)) return null
  return Number(v)
}

export function createH2Upstream(creds: CredentialStore): H2Upstream {
  const pool = new H2SessionPool(creds)
  let retries = 0

  async function handler(ctx: RequestContext): Promise<void> {
    const route = ctx.route
    if (!route) throw proxyError('REMORA_ERR_INTERNAL', 'no route chosen')
    const res = ctx.res
    if (!(res instanceof H2Response)) throw proxyError('REMORA_ERR_INTERNAL', 'the HTTP/2 upstream needs an HTTP/2 downstream')
    const down = res.stream
    if (down.destroyed) {
      ctx.flags.push(FLAGS.DownstreamConnectionTermination)
      return
    }
    const body = { started: false }
    let out = await attempt(ctx, res, route, pool.session(route), body)
    // A stream the server never processed (REFUSED_STREAM, or above a GOAWAY's last stream id) is
    // safe to send again (RFC 9113 §8.7), once, on a new session, if no body byte was taken from
    // the caller yet (a streamed body cannot be replayed).
    if (!out.done && out.unprocessed && !body.started) {
      retries++
      out = await attempt(ctx, res, route, pool.session(route), body)
    }
    if (!out.done) throw upstreamFailure(out.failure, out.cause)
  }

  function attempt(ctx: RequestContext, res: H2Response, route: RouteTarget, s: H2Session, body: { started: boolean }): Promise<Outcome> {
    const down = res.stream
    const grpc = res.grpc
    const fromApp = ctx.direction === 'inbound'
    return new Promise<Outcome>((resolve) => {
      let up: ClientHttp2Stream
      const endStream = down.endAfterHeaders || down.readableEnded
      try {
        up = s.session.request(requestHeaders(ctx), { endStream })
      } catch (err) {
        // The session went away between the pool and here (GOAWAY, destroyed): nothing was sent.
        pool.drop(s)
        return resolve({ done: false, failure: s.failure ?? { kind: 'reset', reason: (err as { code?: string }).code }, unprocessed: s.failure === null, cause: err })
      }
      s.streams++
      const t0 = performance.now()
      let settled = false
      let responded = false
      let trailers: IncomingHttpHeaders | null = null
      let detachBody: (() => void) | null = null
      /** The whole answer is out (its END_STREAM queued): a reset by the caller after it is no DC. */
      let answered = false
      const settle = (o: Outcome): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        down.removeListener('close', onDownClose)
        // A failed attempt lets go of the caller's body, so that a retry can take it.
        if (!o.done) detachBody?.()
        resolve(o)
      }

      // Envoy's route timeout: the response head must arrive in time (504 UT).
      const timer = setTimeout(() => {
        if (responded) return
        resetStream(up, NGHTTP2_CANCEL)
        settle({ done: false, failure: { kind: 'timeout' }, unprocessed: false })
      }, route.timeoutMs)

      // The caller's stream is done: after the whole answer (our END_STREAM and theirs), or reset by
      // the caller (or its connection went), and then ours is cancelled.
      const onDownClose = (): void => {
        if (!(responded && (answered || down.rstCode === NGHTTP2_NO_ERROR || isLocalReset(down)))) {
          resetStream(up, NGHTTP2_CANCEL)
          if (!isLocalReset(down) && !ctx.flags.includes(FLAGS.DownstreamConnectionTermination)) ctx.flags.push(FLAGS.DownstreamConnectionTermination)
        } else if (!up.closed) resetStream(up, NGHTTP2_CANCEL) // the caller stopped its body after the answer
        settle(DONE)
      }
      down.once('close', onDownClose)
      up.on('error', () => {}) // the close handler below classifies

      up.once('response', (headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
        if (settled) return
        responded = true
        clearTimeout(timer)
        ctx.upstreamMs = performance.now() - t0
        const status = headers[':status'] ?? 502
        const h = passOn(headers, fromApp)
        const extra = responseExtras(ctx, status, false)
        if (extra !== null) Object.assign(h, extra)
        h[':status'] = status
        res.statusCode = status
        // END_STREAM on the response HEADERS (Node sets endAfterHeaders only on server streams).
        const ends = (flags & NGHTTP2_FLAG_END_STREAM) !== 0
        if (grpc !== null && ends) grpc.status = grpcStatusOf(headers) // trailers-only: the status is in the head
        if (down.destroyed) return
        down.respond(h, ends ? { endStream: true } : { waitForTrailers: true })
        if (ends) {
          answered = true
          return
        }
        // Idle between response chunks beyond the route's idle timeout: reset (stream idle timeout).
        up.setTimeout(route.idleTimeoutMs, () => {
          if (!ctx.flags.includes(FLAGS.StreamIdleTimeout)) ctx.flags.push(FLAGS.StreamIdleTimeout)
          resetStream(up, NGHTTP2_CANCEL)
        })
        const counter = grpc !== null ? new GrpcMessageCounter() : null
        pump(up, down, (c) => {
          ctx.bytesSent += c.length
          if (counter !== null) grpc!.responseMessages += counter.push(c)
        })
        up.once('trailers', (t: IncomingHttpHeaders) => {
          trailers = t
          if (grpc !== null) grpc.status = grpcStatusOf(t)
        })
        up.once('end', () => {
          if (!down.destroyed) down.end()
        })
        down.once('wantTrailers', () => {
          const t = trailers !== null ? passOn(trailers, fromApp) : {}
          try {
            down.sendTrailers(t)
            answered = true
          } catch {
            // the caller reset meanwhile
          }
        })
      })

      up.once('close', () => {
        s.streams--
        const code = up.rstCode ?? NGHTTP2_NO_ERROR
        if (!responded) {
          if (settled) return
          if (!s.established) {
            // The session's own error (a refused connection, secure naming) is emitted after its
            // streams close: classify once it has landed.
            setImmediate(() => settle({ done: false, failure: s.failure ?? { kind: 'connect', reason: 'connection closed before the HTTP/2 preface' }, unprocessed: false }))
            return
          }
          const unprocessed = code === NGHTTP2_REFUSED_STREAM || (s.goawayLastStreamId !== null && (up.id === undefined || up.id > s.goawayLastStreamId))
          // The connection went (UC), or the server reset just this stream and kept it (UR, as
          // Envoy's upstream remote reset); a dying session closes its streams first, so look once
          // the rest of this turn's events have landed.
          if (code === NGHTTP2_NO_ERROR) return settle({ done: false, failure: { kind: 'reset', reason: 'connection termination' }, unprocessed })
          setImmediate(() => {
            const gone = s.session.destroyed || s.session.closed
            settle({ done: false, failure: gone ? { kind: 'reset', reason: `connection reset (${h2ErrorName(code)})` } : { kind: 'stream-reset', reason: `remote reset (${h2ErrorName(code)})` }, unprocessed })
          })
          return
        }
        if (code !== NGHTTP2_NO_ERROR && !down.destroyed && !down.writableFinished) {
          // After the head, the only honest signal left is a reset, with the upstream's own code.
          if (!ctx.flags.includes(FLAGS.UpstreamRemoteReset) && !ctx.flags.includes(FLAGS.StreamIdleTimeout)) ctx.flags.push(FLAGS.UpstreamRemoteReset)
          res.reset(code === NGHTTP2_CANCEL ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR)
        }
        // Otherwise the answer is on its way out; the caller's stream closing settles. A caller still
        // sending then (a client stream the server answered early) is expected to stop, as gRPC
        // clients do on the status; no RST_STREAM NO_ERROR from here: nghttp2 may send it ahead of
        // the queued trailers, which would lose the status. The stream idle timeout bounds the rest.
      })

      if (!endStream) {
        const counter = grpc !== null ? new GrpcMessageCounter() : null
        const onEnd = (): void => {
          if (!up.destroyed) up.end()
        }
        const stop = pump(down, up, (c) => {
          body.started = true
          ctx.bytesReceived += c.length
          if (counter !== null) grpc!.requestMessages += counter.push(c)
        })
        down.once('end', onEnd)
        detachBody = () => {
          stop()
          down.removeListener('end', onEnd)
        }
      }
    })
  }

  return {
    handler,
    stats: () => ({ sessions: pool.stats(), sessionsCreated: pool.created, retries }),
    retain: (targets) => pool.retain(targets),
    close: () => pool.close(),
  }
}

/**
 * Moves a body from `src` to `dst` with back-pressure (a paused stream stops acknowledging DATA, so
 * HTTP/2 flow control holds the sender), counting each chunk. Returns a detach: `src` stops flowing.
 */
function pump(src: ClientHttp2Stream | ServerHttp2Stream, dst: ClientHttp2Stream | ServerHttp2Stream, onChunk: (c: Buffer) => void): () => void {
  const onDrain = (): void => void src.resume()
  const onData = (c: Buffer): void => {
    onChunk(c)
    bodyBytesForwarded(c.length)
    if (!dst.write(c)) {
      src.pause()
      dst.once('drain', onDrain)
    }
  }
  src.on('data', onData)
  return () => {
    src.removeListener('data', onData)
    dst.removeListener('drain', onDrain)
    src.pause()
  }
}
