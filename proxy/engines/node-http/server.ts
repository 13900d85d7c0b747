import http, { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { PROXY_ERRORS, type ProxyErrorCode, type RequestContext } from '../../pipeline/index.js'
import { createContext } from '../common/context.js'
import { DEFAULT_FRONT_LIMITS, parserErrorCode, rawResponse, timeoutSweepMs, type FrontOptions } from '../common/front.js'

export type HttpFrontOptions = FrontOptions


/**
 * A parse error that arrives while a request is in the pipeline but not yet sent upstream (e.g. a
 * bad chunk right behind the headers) is parked on the socket; the upstream stage checks it before
 * dispatching, so the request never reaches the app. `kDispatched` marks a request already sent.
 */
export const kParserError = Symbol('remora.parserError')
export const kDispatched = Symbol('remora.dispatched')
export type FrontSocket = { [kParserError]?: ProxyErrorCode; [kDispatched]?: boolean }

const HTTP_METHODS = new Set(http.METHODS)

/** After a refusal the front answers on: how long what the caller still sends is discarded before the close. */
const REFUSED_LINGER_MS = 1000

/**
 * Answers a connection node:http's parser gave up on, then closes it with a bounded lingering
 * close: the rest of the input is read and discarded for at most a second, so that the kernel
 * does not reset the connection (destroying the answer) while the caller is still sending.
 */
function refuseAndLinger(socket: Duplex, response: string): void {
  const s = socket as Duplex & { [kRefused]?: boolean }
  if (s[kRefused]) return
  s[kRefused] = true
  socket.removeAllListeners('data')
  socket.on('data', () => {})
  socket.resume()
  socket.end(response)
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref()
}
const kRefused = Symbol('remora.refused')

/**
 * Pipelining on the node-http engine: node:http parses every request of a read and dispatches
 * each at once (it has no way to stop its parser between messages), so 10,000 pipelined requests
 * were 10,000 requests in memory (+236 MiB). More than MAX_PIPELINED requests in flight on one
 * connection closes it: a cut at a documented limit (docs/forwarding.md#limits). The raw engine
 * answers any number, one at a time.
 */
export const MAX_PIPELINED = 32
const kInFlight = Symbol('remora.inFlight')
function overPipelined(req: IncomingMessage, res: ServerResponse): boolean {
  const s = req.socket as typeof req.socket & { [kInFlight]?: number }
  const n = (s[kInFlight] ?? 0) + 1
  s[kInFlight] = n
  res.once('close', () => void (s[kInFlight] = (s[kInFlight] ?? 1) - 1))
  if (n <= MAX_PIPELINED) return false
  s.destroy()
  return true
}

const upgradedSockets = new WeakMap<object, Set<Duplex>>()

/** Destroys the sockets that left node:http through an Upgrade (WebSocket tunnels) on shutdown. */
export function destroyUpgradedSockets(server: object): void {
  for (const s of upgradedSockets.get(server) ?? []) s.destroy()
}

/**
 * The node:http front of a listener: Node's llhttp parser (strict: CL+TE, duplicate CL, obs-fold
 * and bad chunks are refused), the header size and count limits → 431, the head timeout → 408,
 * upgrades routed through the same pipeline.
 */
export function createHttpFront(opts: HttpFrontOptions): http.Server {
  const { direction, handler, onParserError } = opts
  const limits = opts.limits ?? DEFAULT_FRONT_LIMITS
  const server = http.createServer({
    maxHeaderSize: limits.maxRequestHeadersBytes,
    requestTimeout: 0, // streaming uploads may take long; idle is bounded below
    // Node's headersTimeout runs from accept (first request) or from a head's first byte (later
    // ones), checked every connectionsCheckingInterval: the same rule as the raw front's sweeper.
    headersTimeout: limits.requestHeadersTimeoutMs,
    connectionsCheckingInterval: timeoutSweepMs(limits),
    keepAliveTimeout: limits.idleTimeoutMs,
    requireHostHeader: true,
  })
  // node:http keeps at most maxHeadersCount header lines and drops the rest silently: one more than
  // the limit lets a request over it be seen and refused, so no copy of a header is ever dropped.
  server.maxHeadersCount = limits.maxRequestHeadersCount + 1
  const maxHeaderFields = limits.maxRequestHeadersCount * 2
  // No activity on a connection for streamIdleTimeout (Envoy's stream idle timeout, 5 minutes):
  // close it, so a stalled upload or an abandoned connection cannot hold resources forever.
  server.timeout = limits.streamIdleTimeoutMs
  // node:http tracks connections for headersTimeout only once 'listening' fired (its
  // setupConnectionsTracking); the inbound front never listens, it is handed sockets, so without
  // this its head timeout never ran. A later listen() restarts the same tracking (idempotent).
  server.emit('listening')
  const upgraded = new Set<Duplex>()
  upgradedSockets.set(server, upgraded)
  const run = (ctx: RequestContext): void => {
    handler()(ctx).catch(() => ctx.res.destroy())
  }
  /** A request over a limit node:http does not enforce itself: answered here, before any stage sees it, and closed. */
  const refuse = (req: IncomingMessage, socket: Duplex, res: ServerResponse | null, code: ProxyErrorCode): void => {
    const net = socket as Duplex & { remoteAddress?: string; remotePort?: number }
    onParserError({ code, parserCode: code, remote: `${net.remoteAddress ?? ''}:${net.remotePort ?? 0}`, direction })
    req.resume()
    if (res === null) {
      refuseAndLinger(socket, rawResponse(code))
      return
    }
    const d = PROXY_ERRORS[code]
    const body = `${d.message}\n`
    res.shouldKeepAlive = false
    res.writeHead(d.status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-remora-response-flags': d.flag, 'x-remora-error-code': d.code, connection: 'close' })
    res.end(body)
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.rawHeaders.length > maxHeaderFields) {
      refuse(req, req.socket, res, 'REMORA_ERR_TOO_MANY_HEADERS')
      return
    }
    // llhttp also parses RTSP/ICE requests (ANNOUNCE … RTSP/1.0); they are not HTTP: 400 before upstream.
    if (!HTTP_METHODS.has(req.method ?? '')) (req.socket as FrontSocket)[kParserError] = 'REMORA_ERR_BAD_REQUEST'
    if (overPipelined(req, res)) return
    run(createContext(direction, req, res, null))
  }
  server.on('request', onRequest)
  server.on('checkContinue', onRequest) // the upstream stage answers 100 once the request is authorized
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.rawHeaders.length > maxHeaderFields) {
      refuse(req, socket, null, 'REMORA_ERR_TOO_MANY_HEADERS')
      return
    }
    if (head.length) socket.unshift(head)
    const res = new ServerResponse(req)
    res.assignSocket(socket as never)
    res.shouldKeepAlive = false
    // Only WebSocket upgrades are proxied as upgrades (Envoy's upgrade_configs default); any other
    // Upgrade (h2c…) is served as a plain request, its Upgrade header dropped by `sanitize`.
    const isWebSocket = String(req.headers.upgrade ?? '').toLowerCase() === 'websocket'
    // node:http no longer tracks this socket: close it after a non-101 answer, and on shutdown.
    upgraded.add(socket)
    socket.once('close', () => upgraded.delete(socket))
    res.once('finish', () => socket.end())
    run(createContext(direction, req, res, isWebSocket ? socket : null))
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const parserCode = err.code ?? ''
    const inFlight = (socket as { _httpMessage?: ServerResponse })._httpMessage
    if (parserCode === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // headersTimeout: a head is pending (408), or a new connection sent nothing (closed silently).
      const s = socket as Duplex & { bytesRead?: number; remoteAddress?: string; remotePort?: number }
      if (inFlight || !socket.writable || (s.bytesRead ?? 0) === 0) {
        socket.destroy()
        return
      }
      onParserError({ code: 'REMORA_ERR_REQUEST_TIMEOUT', parserCode, remote: `${s.remoteAddress ?? ''}:${s.remotePort ?? 0}`, direction })
      refuseAndLinger(socket, rawResponse('REMORA_ERR_REQUEST_TIMEOUT'))
      return
    }
    const code = parserErrorCode(parserCode)
    if (inFlight && !inFlight.headersSent && !(socket as FrontSocket)[kDispatched] && socket.writable) {
      ;(socket as FrontSocket)[kParserError] = code // the pipeline answers 400 and closes
      return
    }
    if (parserCode === 'ECONNRESET' || !socket.writable || inFlight) {
      socket.destroy()
      return
    }
    const net = socket as Duplex & { remoteAddress?: string; remotePort?: number }
    onParserError({ code, parserCode, remote: `${net.remoteAddress ?? ''}:${net.remotePort ?? 0}`, direction })
    refuseAndLinger(socket, rawResponse(code))
  })
  return server
}
