import type { Direction, Handler, ProxyErrorCode } from '../../pipeline/index.js'
import { proxyResponseHead } from '../../pipeline/index.js'

// The contract of a listener's front, whatever the engine: what it is given (the current chain, the
// refusal hook, the limits), how llhttp's refusals map to the catalog, and the one answer a front
// writes itself when no request exists yet (the same head sendProxyResponse writes).

export const MAX_HEADER_BYTES = 60 * 1024 // Envoy's max_request_headers_kb default

/** Downstream limits of a front (sidecar.yaml `limits`, docs/forwarding.md#limits). */
export interface FrontLimits {
  /** A head must be complete this long after its first byte (a new connection: after accept): 408, or a silent close if nothing came. */
  readonly requestHeadersTimeoutMs: number
  /** A keep-alive connection with nothing in flight and nothing started: closed without an answer. */
  readonly idleTimeoutMs: number
  /** No byte in either direction while a request is in hand: closed. */
  readonly streamIdleTimeoutMs: number
  /** More header lines than this: 431 REMORA_ERR_TOO_MANY_HEADERS before the pipeline. */
  readonly maxRequestHeadersCount: number
  /** Request line and headers above this: 431 REMORA_ERR_HEADERS_TOO_LARGE. */
  readonly maxRequestHeadersBytes: number
}

/** The defaults of proxy/config/schema.ts LIMITS_DEFAULTS (test/integration/front-limits.test.ts keeps them equal). */
export const DEFAULT_FRONT_LIMITS: FrontLimits = {
  requestHeadersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  streamIdleTimeoutMs: 300_000,
  maxRequestHeadersCount: 100,
  maxRequestHeadersBytes: MAX_HEADER_BYTES,
}

/** How often connections are checked against the head and idle timeouts: a tenth of the shorter, 50 ms..1 s. */
export function timeoutSweepMs(l: FrontLimits): number {
  return Math.min(1000, Math.max(50, Math.floor(Math.min(l.requestHeadersTimeoutMs, l.idleTimeoutMs) / 10)))
}

export interface FrontOptions {
  readonly direction: Direction
  /** Reads the current handler at each request: a config swap applies to the next request. */
  readonly handler: () => Handler
  /** For requests the front refused before a request existed (smuggling attempts, 431, 408). */
  readonly onParserError: (entry: { code: ProxyErrorCode; parserCode: string; remote: string; direction: Direction }) => void
  /** Default DEFAULT_FRONT_LIMITS. */
  readonly limits?: FrontLimits
  /** A throw from the front's own parser callbacks (a bug): reported, and the connection closed. */
  readonly onInternalError?: (err: unknown) => void
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
  const { status, reason, headers, body } = proxyResponseHead(code)
  let head = `HTTP/1.1 ${status} ${reason}\r\n`
  // No request exists, so nothing on this connection can follow: always `connection: close`.
  for (const k in headers) if (k !== 'connection') head += `${k}: ${headers[k]}\r\n`
  return `${head}connection: close\r\n\r\n${body}`
}

