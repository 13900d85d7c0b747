import type { Duplex } from 'node:stream'
import type { PeerIdentity } from '../../identity/index.js'
import type { Direction, DownstreamRequest, DownstreamResponse, FixedRoute, OriginalDst, RequestContext } from '../../pipeline/index.js'

/** Per-connection facts, computed once at accept/handshake time and reused by every request on it. */
export interface ConnectionInfo {
  readonly peer: PeerIdentity | null
  readonly security: 'mutual_tls' | 'none'
  /** Set when the connection was redirected by interception (read once at accept). */
  readonly originalDst?: OriginalDst | null
  readonly fixedRoute?: FixedRoute | null
}

const PLAIN: ConnectionInfo = { peer: null, security: 'none' }
const connections = new WeakMap<object, ConnectionInfo>()

/** The facts set for a socket at accept (or the plain default). */
export function connectionInfo(socket: object): ConnectionInfo {
  return connections.get(socket) ?? PLAIN
}

export function setConnectionInfo(socket: object, info: ConnectionInfo): void {
  connections.set(socket, info)
}

/** What a context is made from: node:http's IncomingMessage, or the raw engine's request. */
export interface ContextRequest extends DownstreamRequest {
  readonly method?: string
  readonly url?: string
  readonly socket: { readonly remoteAddress?: string; readonly remotePort?: number; readonly localPort?: number }
}

/** One context factory for both engines, so a field added to RequestContext is set by both. */
export function createContext(direction: Direction, req: ContextRequest, res: DownstreamResponse, upgradeSocket: Duplex | null): RequestContext {
  const socket = req.socket
  const info = connections.get(socket) ?? PLAIN
  return {
    direction,
    req,
    res,
    startTime: Date.now(),
    startMono: performance.now(),
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    authority: '',
    host: '',
    hostPort: null,
    path: '',
    query: '',
    requestId: '',
    headers: {},
    peer: info.peer,
    connectionSecurity: info.security,
    sourceIp: socket.remoteAddress ?? '',
    sourcePort: socket.remotePort ?? 0,
    localPort: socket.localPort ?? 0,
    originalDst: info.originalDst ?? null,
    fixedRoute: info.fixedRoute ?? null,
    upgradeSocket,
    route: null,
    flags: [],
    errorCode: null,
    errorDetail: null,
    cluster: null,
    upstreamHost: null,
    decision: null,
    auth: null,
    bytesReceived: 0,
    bytesSent: 0,
    upstreamMs: null,
    traceId: null,
    spanId: null,
    traceLink: null,
    traceHeaders: null,
  }
}
