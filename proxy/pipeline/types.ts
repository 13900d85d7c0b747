import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import type { PeerIdentity } from '../identity/index.js'
import type { Decision, RequestAuth } from '../policy/index.js'
import type { ResponseFlag } from './flags.js'

export type Direction = 'inbound' | 'outbound'

/**
 * The downstream request as stages see it. Both forwarding engines provide it: node:http's
 * IncomingMessage, and the raw engine's request (headers joined the way node:http joins them).
 */
export interface DownstreamRequest {
  readonly headers: IncomingHttpHeaders
  /** Name/value pairs as received (names in their original case). */
  readonly rawHeaders: readonly string[]
  readonly httpVersion: string
}

/** The downstream response as stages see it (node:http's ServerResponse or the raw engine's). */
export interface DownstreamResponse {
  statusCode: number
  readonly headersSent: boolean
  readonly destroyed: boolean
  writeHead(statusCode: number, headers: Record<string, string | number>): unknown
  end(body?: string): unknown
  destroy(): unknown
}

/** What a stage knows about one request. Created by the listener, filled in by stages. */
export interface RequestContext {
  readonly direction: Direction
  readonly req: DownstreamRequest
  readonly res: DownstreamResponse
  /** ms since epoch (access log) and a monotonic start (durations). */
  readonly startTime: number
  readonly startMono: number
  readonly method: string
  /** The request target as received (origin-form or absolute-form). Never logged: may hold secrets in its query. */
  readonly target: string
  /** Lower-case host without port, and the port if one was given. Set by `sanitize`. */
  authority: string
  host: string
  hostPort: number | null
  /** Normalized path without query; the query with its `?`. Set by `sanitize`. */
  path: string
  query: string
  requestId: string
  /** Headers to send upstream (lower-case names); hop-by-hop ones removed by `sanitize`. */
  headers: Record<string, string | string[]>
  readonly peer: PeerIdentity | null
  readonly connectionSecurity: 'mutual_tls' | 'none'
  readonly sourceIp: string
  readonly sourcePort: number
  readonly localPort: number
  /** Where the app dialled before interception redirected it (SO_ORIGINAL_DST), when it was redirected. */
  readonly originalDst: OriginalDst | null
  /** Set on a local bind port's connections (outbound.listeners): every request goes to this cluster and workload port. */
  readonly fixedRoute: FixedRoute | null
  /** Set for `Upgrade` requests (WebSocket): the raw downstream socket, once authorized. */
  readonly upgradeSocket: Duplex | null
  /** Chosen by the `route` stage; used by the terminal `upstream` stage. */
  route: RouteTarget | null
  /** Filled by stages for the access log, metrics and traces. */
  flags: ResponseFlag[]
  errorCode: string | null
  errorDetail: string | null
  cluster: string | null
  upstreamHost: string | null
  decision: Decision | null
  /** Set by `authnJwt` when a token verified (request principal + claims); null otherwise. */
  auth: RequestAuth | null
  bytesReceived: number
  bytesSent: number
  upstreamMs: number | null
  /** Set by `trace`: this sidecar's span ids (hex), also when the span is not sampled. */
  traceId: string | null
  spanId: string | null
  /** Set by `trace` for a sampled span when `--jaeger-ui` is set: `<ui>/trace/<trace_id>`. */
  traceLink: string | null
  /** Set by `trace`: propagation headers for the upstream request; `sanitize` writes them into `headers`. */
  traceHeaders: Record<string, string> | null
}

/** A local bind port's destination: a cluster and the workload port to ask for (null: its default). */
export interface FixedRoute {
  readonly cluster: string
  readonly targetPort: number | null
}

/** A connection's destination before iptables' REDIRECT (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). */
export interface OriginalDst {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

export type Handler = (ctx: RequestContext) => Promise<void>
export type Stage = (next: Handler) => Handler

/** One endpoint's connection pool, made by the forwarding engine (undici Pool, or the raw engine's). */
export interface UpstreamPool {
  readonly stats: { readonly connected: number; readonly pending: number; readonly running: number }
  close(): Promise<void>
  destroy(): Promise<void>
}

/** Where the `upstream` stage sends the request. Built at config time; chosen per request. */
export interface RouteTarget {
  readonly cluster: string
  readonly address: string
  readonly dispatcher: UpstreamPool
  readonly timeoutMs: number
  readonly idleTimeoutMs: number
  /** mTLS to a sidecar: the SPIFFE IDs secure naming expects there, and the SNI; null for a plain target (the local app, a passthrough). */
  readonly identities: readonly string[] | null
  readonly servername: string | null
  readonly connectTimeoutMs: number
}
