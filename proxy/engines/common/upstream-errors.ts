import { proxyError, type ProxyError } from '../../pipeline/index.js'

/**
 * What went wrong upstream before response headers, as each engine classifies its own errors
 * (undici codes, raw socket events). One mapping to the catalog, so both engines answer the same
 * failure with the same status, flag and code.
 */
export type UpstreamFailure =
  /** Refused, connect timeout, or the TLS handshake failed (our certificate refused): 503 UF. */
  | { readonly kind: 'connect'; readonly reason: string }
  /** The server's SPIFFE ID is not one of the cluster's identities: 503 UF, nothing sent. */
  | { readonly kind: 'secure-naming'; readonly message: string }
  /** No response head within the route timeout: 504 UT. */
  | { readonly kind: 'timeout' }
  /** The response broke HTTP/1.1 (bad head, length mismatch, oversized head, a bad upgrade): 502 UPE. */
  | { readonly kind: 'protocol' }
  /** Closed or reset before the response head: 503 UC. */
  | { readonly kind: 'reset'; readonly reason?: string }
  /** HTTP/2: the upstream reset this stream (RST_STREAM) before the response head, the connection kept: 503 UR (Envoy's upstream remote reset). */
  | { readonly kind: 'stream-reset'; readonly reason: string }
  /** The downstream request's body did not match its framing: 400 DPE. */
  | { readonly kind: 'request-framing' }

export function upstreamFailure(f: UpstreamFailure, cause?: unknown): ProxyError {
  switch (f.kind) {
    case 'connect':
      return proxyError('REMORA_ERR_UPSTREAM_CONNECT', `reset reason: ${f.reason}`, cause)
    case 'secure-naming':
      return proxyError('REMORA_ERR_UPSTREAM_SECURE_NAMING', f.message, cause)
    case 'timeout':
      return proxyError('REMORA_ERR_UPSTREAM_TIMEOUT', undefined, cause)
    case 'protocol':
      return proxyError('REMORA_ERR_UPSTREAM_PROTOCOL', undefined, cause)
    case 'reset':
      return proxyError('REMORA_ERR_UPSTREAM_RESET', f.reason ? `reset reason: ${f.reason}` : undefined, cause)
    case 'stream-reset':
      return proxyError('REMORA_ERR_UPSTREAM_STREAM_RESET', `reset reason: ${f.reason}`, cause)
    case 'request-framing':
      return proxyError('REMORA_ERR_BAD_FRAMING', 'request body length does not match Content-Length', cause)
  }
}
