import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type net from 'node:net'
import tls from 'node:tls'
import { proxyResponseHead, type ProxyErrorCode, type RequestContext } from '../../pipeline/index.js'
import { createContext, DEFAULT_FRONT_LIMITS, timeoutSweepMs, type FrontLimits, type FrontOptions } from '../common/index.js'
import type { ConnectionSink } from '../engine.js'
import { isGrpcContentType, startGrpcCall } from '../../telemetry/index.js'
import { H2Request, H2Response, isLocalReset, requestHead } from './exchange.js'

// The HTTP/2 front of a listener: node:http2's server, never listening, fed the connections the
// listener classified as HTTP/2 (h2c prior knowledge from the app, ALPN h2 from a peer sidecar).
// Each stream becomes one RequestContext for the current chain, exactly as an HTTP/1.1 request
// does. The limits of sidecar.yaml map to HTTP/2 settings; RFC 9113 §10.5 abuse (rapid reset,
// SETTINGS/PING floods, CONTINUATION floods) is bounded by nghttp2's own defences and ours.

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants

/**
 * The HTTP/2 settings and session bounds (docs/h2.md#settings-and-limits). Envoy's own default for
 * max_concurrent_streams is 2^31-1; 100 is what its edge best practices recommend and what most
 * HTTP/2 servers (and gRPC clients' expectations) use.
 */
export const H2_FRONT = {
  maxConcurrentStreams: 100,
  /** The per-stream window (RFC 9113 default, Envoy's edge recommendation of 64 KiB). */
  initialWindowSize: 65_535,
  /** The connection window (Envoy's edge recommendation: 1 MiB), so 16 concurrent streams are not starved by the 64 KiB default. */
  connectionWindowSize: 1 << 20,
  /** Node's session memory cap in MB (nghttp2's buffers, pending frames): past it new streams are refused. */
  maxSessionMemoryMb: 10,
  /** Entries per SETTINGS frame (Node's default), and unacknowledged pings we send. */
  maxSettings: 32,
  maxOutstandingPings: 10,
  /** Invalid frames, and streams refused (over maxConcurrentStreams), before Node closes the session. */
  maxSessionInvalidFrames: 100,
  maxSessionRejectedStreams: 100,
  /** A caller's RST_STREAM within this long after the stream opened is premature (Envoy: 1 s). */
  prematureResetMs: 1000,
  /** Envoy's rule: once premature resets reach half of max(this, streams closed), GOAWAY and close. */
  prematureResetStreamCount: 500,
} as const

/** What a front reports about itself (the admin endpoint, tests). */
export interface H2FrontStats {
  readonly sessions: number
  readonly streams: number
  /** Sessions closed with GOAWAY ENHANCE_YOUR_CALM for resetting streams prematurely (CVE-2023-44487). */
  readonly rapidResetCloses: number
  /** Streams answered 431 for their header count or size. */
  readonly refusedHeaders: number
}

export interface H2Front extends ConnectionSink {
  emit(event: 'connection', socket: net.Socket): boolean
  closeIdleConnections(): void
  closeAllConnections(): void
  /** Stops taking connections, sends GOAWAY on every session and resolves when all are closed. */
  close(): Promise<void>
  stats(): H2FrontStats
}

interface SessionState {
  readonly socket: net.Socket
  readonly created: number
  /** Streams open now, opened in all, closed in all, reset prematurely by the caller. */
  open: number
  opened: number
  closed: number
  premature: number
  /** performance.now() when the last stream closed (the idle timeout runs from there). */
  idleSince: number
}

const kState = Symbol('remora.h2.session')
type FrontSession = ServerHttp2Session & { [kState]?: SessionState }

/** Node's hard stops, above ours: past them nghttp2 resets the stream itself (ENHANCE_YOUR_CALM), before any stage. */
function nodeLimits(l: FrontLimits): { maxHeaderListSize: number; maxHeaderListPairs: number } {
  // Twice ours, so that a request between the two is seen and answered 431 like an HTTP/1.1 one.
  return { maxHeaderListSize: 2 * l.maxRequestHeadersBytes, maxHeaderListPairs: 2 * l.maxRequestHeadersCount + 8 }
}

export function createH2Front(o: FrontOptions): H2Front {
  const { direction, handler, onParserError } = o
  const limits = o.limits ?? DEFAULT_FRONT_LIMITS
  const hard = nodeLimits(limits)
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: H2_FRONT.maxConcurrentStreams,
      initialWindowSize: H2_FRONT.initialWindowSize,
      maxHeaderListSize: hard.maxHeaderListSize,
    },
    maxHeaderListPairs: hard.maxHeaderListPairs,
    maxSessionMemory: H2_FRONT.maxSessionMemoryMb,
    maxSettings: H2_FRONT.maxSettings,
    maxOutstandingPings: H2_FRONT.maxOutstandingPings,
    maxSessionInvalidFrames: H2_FRONT.maxSessionInvalidFrames,
    maxSessionRejectedStreams: H2_FRONT.maxSessionRejectedStreams,
    // Connections reach this server already classified; an unknown protocol cannot arrive.
    unknownProtocolTimeout: 1000,
  })
  const sessions = new Set<FrontSession>()
  let closing = false
  let rapidResetCloses = 0
  let refusedHeaders = 0
  let sweeper: NodeJS.Timeout | null = null
  /** The socket being handed to node:http2 right now: its 'session' event fires synchronously. */
  let handing: net.Socket | null = null

  const sweep = (): void => {
    const now = performance.now()
    for (const s of sessions) {
      const st = s[kState]!
      if (st.open > 0) continue
      // A connection that never opened a stream: the head timeout, closed silently (as HTTP/1.1's).
      if (st.opened === 0) {
        if (now - st.created > limits.requestHeadersTimeoutMs) s.destroy()
      } else if (now - st.idleSince > limits.idleTimeoutMs) s.close() // GOAWAY NO_ERROR
    }
  }

  server.on('session', (session: FrontSession) => {
    const socket = handing
    if (socket === null) return void session.destroy()
    const now = performance.now()
    session[kState] = { socket, created: now, open: 0, opened: 0, closed: 0, premature: 0, idleSince: now }
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    // Errors end the session; they are not the process's business.
    session.on('error', () => {})
    try {
      session.setLocalWindowSize(H2_FRONT.connectionWindowSize)
    } catch {
      // the session is already going away
    }
    sweeper ??= setInterval(sweep, timeoutSweepMs(limits)).unref()
  })

  const refuse = (stream: ServerHttp2Stream, st: SessionState, code: ProxyErrorCode): void => {
    refusedHeaders++
    onParserError({ code, parserCode: code, remote: `${st.socket.remoteAddress ?? ''}:${st.socket.remotePort ?? 0}`, direction })
    const { status, headers, body } = proxyResponseHead(code)
    delete headers.connection
    stream.respond({ ...headers, ':status': status })
    stream.end(body)
  }

  const onPrematureReset = (session: FrontSession, st: SessionState): void => {
    // Streams closed because the whole connection went are not the caller's resets.
    if (session.destroyed || session.closed) return
    st.premature++
    // Envoy's check (conn_manager_impl maybeDrainDueToPrematureResets): close once premature resets
    // are half of max(500, streams closed), i.e. from 250 on a new connection.
    if (st.premature * 2 < Math.max(H2_FRONT.prematureResetStreamCount, st.closed)) return
    rapidResetCloses++
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM)
    session.destroy()
  }

  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
    const session = stream.session as FrontSession | undefined
    const st = session?.[kState]
    if (session === undefined || st === undefined) return void stream.close(NGHTTP2_CANCEL)
    const born = performance.now()
    st.open++
    st.opened++
    stream.on('error', () => {}) // a reset stream errors; the close below says what happened
    stream.once('close', () => {
      st.open--
      st.closed++
      st.idleSince = performance.now()
      if (stream.rstCode !== NGHTTP2_NO_ERROR && stream.rstCode !== undefined && !isLocalReset(stream) && st.idleSince - born < H2_FRONT.prematureResetMs) onPrematureReset(session, st)
    })
    const head = requestHead(headers, raw)
    if (head.fieldCount > limits.maxRequestHeadersCount) return refuse(stream, st, 'REMORA_ERR_TOO_MANY_HEADERS')
    if (head.listSize > limits.maxRequestHeadersBytes) return refuse(stream, st, 'REMORA_ERR_HEADERS_TOO_LARGE')
    const grpc = isGrpcContentType(typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined)
    const res = new H2Response(stream)
    const ctx: RequestContext = createContext(direction, new H2Request(stream, head, st.socket), res, null)
    if (grpc) res.grpc = startGrpcCall(ctx)
    // No byte in either direction for streamIdleTimeout (Envoy's stream idle timeout): reset.
    stream.setTimeout(limits.streamIdleTimeoutMs, () => {
      if (!ctx.flags.includes('SI')) ctx.flags.push('SI')
      res.reset(NGHTTP2_CANCEL)
    })
    handler()(ctx).catch((err: unknown) => {
      o.onInternalError?.(err)
      res.reset()
    })
  })

  const front: H2Front = {
    emit(event: 'connection', socket: net.Socket): boolean {
      if (event !== 'connection') return false
      if (closing) {
        socket.destroy()
        return false
      }
      // A socket accepted with pauseOnConnect that nobody read from yet has its handle stopped,
      // and node:http2 consumes the handle without starting it: read(0) starts it (and takes no
      // data, so bytes a listener read and handed back stay for the session to find).
      if (!(socket instanceof tls.TLSSocket)) socket.read(0)
      handing = socket
      try {
        server.emit('connection', socket)
      } finally {
        handing = null
      }
      return true
    },
    closeIdleConnections(): void {
      for (const s of sessions) if (s[kState]!.open === 0) s.close()
    },
    closeAllConnections(): void {
      for (const s of sessions) s.destroy()
    },
    async close(): Promise<void> {
      closing = true
      if (sweeper !== null) clearInterval(sweeper)
      sweeper = null
      await Promise.all([...sessions].map((s) => closeSession(s)))
    },
    stats(): H2FrontStats {
      let streams = 0
      for (const s of sessions) streams += s[kState]!.open
      return { sessions: sessions.size, streams, rapidResetCloses, refusedHeaders }
    },
  }
  return front
}

/** GOAWAY, then the session ends when its streams do. */
function closeSession(s: Http2Session): Promise<void> {
  if (s.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    s.once('close', () => resolve())
    s.close()
  })
}
