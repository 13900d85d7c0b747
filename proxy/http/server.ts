import http, { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { PROXY_ERRORS, type Direction, type Handler, type ProxyErrorCode, type RequestContext } from '../pipeline/index.js'
import { createContext } from './context.js'

export const MAX_HEADER_BYTES = 60 * 1024 // Envoy's max_request_headers_kb default

/**
 * A parse error that arrives while a request is in the pipeline but not yet sent upstream (e.g. a
 * bad chunk right behind the headers) is parked on the socket; the upstream stage checks it before
 * dispatching, so the request never reaches the app. `kDispatched` marks a request already sent.
 */
export const kParserError = Symbol('remora.parserError')
export const kDispatched = Symbol('remora.dispatched')
export type FrontSocket = { [kParserError]?: ProxyErrorCode; [kDispatched]?: boolean }

export interface HttpFrontOptions {
  readonly direction: Direction
  /** Reads the current handler at each request: a config swap applies to the next request. */
  readonly handler: () => Handler
  /** For requests the HTTP parser refused before a request existed (smuggling attempts, 431). */
  readonly onParserError: (entry: { code: ProxyErrorCode; parserCode: string; remote: string; direction: Direction }) => void
}

const PARSER_FRAMING = new Set([
  'HPE_INVALID_TRANSFER_ENCODING',
  'HPE_UNEXPECTED_CONTENT_LENGTH',
  'HPE_INVALID_CONTENT_LENGTH',
  'HPE_INVALID_CHUNK_SIZE',
  'HPE_CHUNK_EXTENSIONS_OVERFLOW',
  'HPE_INVALID_EOF_STATE',
  'HPE_INVALID_HEADER_TOKEN',
  'HPE_LF_EXPECTED',
  'HPE_CR_EXPECTED',
])

/** The proxy error for an llhttp `HPE_*` code (both engines run the same parser). */
export function parserErrorCode(parserCode: string): ProxyErrorCode {
  return parserCode === 'HPE_HEADER_OVERFLOW' ? 'REMORA_ERR_HEADERS_TOO_LARGE' : PARSER_FRAMING.has(parserCode) ? 'REMORA_ERR_BAD_FRAMING' : 'REMORA_ERR_BAD_REQUEST'
}

/** A complete proxy-generated response for a connection that is about to close (no request exists). */
export function rawResponse(code: ProxyErrorCode): string {
  const d = PROXY_ERRORS[code]
  const body = `${d.message}\n`
  return (
    `HTTP/1.1 ${d.status} ${http.STATUS_CODES[d.status] ?? ''}\r\n` +
    `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-remora-response-flags: ${d.flag}\r\nx-remora-error-code: ${d.code}\r\nconnection: close\r\n\r\n${body}`
  )
}

const HTTP_METHODS = new Set(http.METHODS)

const upgradedSockets = new WeakMap<object, Set<Duplex>>()

/** Destroys the sockets that left node:http through an Upgrade (WebSocket tunnels) on shutdown. */
export function destroyUpgradedSockets(server: object): void {
  for (const s of upgradedSockets.get(server) ?? []) s.destroy()
}

/**
 * The node:http front of a listener: Node's llhttp parser (strict: CL+TE, duplicate CL, obs-fold
 * and bad chunks are refused), 60 KiB header limit → 431, upgrades routed through the same pipeline.
 */
export function createHttpFront(opts: HttpFrontOptions): http.Server {
  const { direction, handler, onParserError } = opts
  const server = http.createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    requestTimeout: 0, // streaming uploads may take long; idle is bounded below
    headersTimeout: 60_000,
    keepAliveTimeout: 60_000,
    requireHostHeader: true,
  })
  // No activity on a connection for 5 minutes (Envoy's stream idle timeout): close it, so a
  // stalled upload or an abandoned connection cannot hold resources forever.
  server.timeout = 300_000
  const upgraded = new Set<Duplex>()
  upgradedSockets.set(server, upgraded)
  const run = (ctx: RequestContext): void => {
    handler()(ctx).catch(() => ctx.res.destroy())
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // llhttp also parses RTSP/ICE requests (ANNOUNCE … RTSP/1.0); they are not HTTP: 400 before upstream.
    if (!HTTP_METHODS.has(req.method ?? '')) (req.socket as FrontSocket)[kParserError] = 'REMORA_ERR_BAD_REQUEST'
    run(createContext(direction, req, res, null))
  }
  server.on('request', onRequest)
  server.on('checkContinue', onRequest) // the upstream stage answers 100 once the request is authorized
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
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
    const code = parserErrorCode(parserCode)
    const inFlight = (socket as { _httpMessage?: ServerResponse })._httpMessage
    if (inFlight && !inFlight.headersSent && !(socket as FrontSocket)[kDispatched] && socket.writable) {
      ;(socket as FrontSocket)[kParserError] = code // the pipeline answers 400 and closes
      return
    }
    if (parserCode === 'ECONNRESET' || parserCode === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable || inFlight) {
      socket.destroy()
      return
    }
    const net = socket as Duplex & { remoteAddress?: string; remotePort?: number }
    onParserError({ code, parserCode, remote: `${net.remoteAddress ?? ''}:${net.remotePort ?? 0}`, direction })
    socket.end(rawResponse(code))
  })
  return server
}
