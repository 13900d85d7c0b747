import { RemoraError, isRemoraError } from '../errors/index.js'
import { FLAGS, type ResponseFlag } from './flags.js'

// The one catalog of proxy-generated responses: a stable code, the HTTP status, the response flag
// and the message. Callers match on `err.code`; docs/errors.md lists every code (a test keeps both in sync).
export interface ProxyErrorDef {
  readonly code: string
  readonly status: number
  readonly flag: ResponseFlag
  readonly message: string
}

function def(code: string, status: number, flag: ResponseFlag, message: string): ProxyErrorDef {
  return { code, status, flag, message }
}

export const PROXY_ERRORS = {
  REMORA_ERR_ROUTE_NOT_FOUND: def('REMORA_ERR_ROUTE_NOT_FOUND', 404, FLAGS.NoRoute, 'no route for this host'),
  REMORA_ERR_REGISTRY_ONLY: def('REMORA_ERR_REGISTRY_ONLY', 502, FLAGS.NoRoute, 'destination outside the mesh refused (outbound traffic policy REGISTRY_ONLY)'),
  REMORA_ERR_NO_CONFIG: def('REMORA_ERR_NO_CONFIG', 503, FLAGS.NoClusterFound, 'no configuration received yet'),
  REMORA_ERR_UPSTREAM_NO_HEALTHY: def('REMORA_ERR_UPSTREAM_NO_HEALTHY', 503, FLAGS.NoHealthyUpstream, 'no healthy upstream'),
  REMORA_ERR_UPSTREAM_CONNECT: def('REMORA_ERR_UPSTREAM_CONNECT', 503, FLAGS.UpstreamConnectionFailure, 'upstream connect error'),
  REMORA_ERR_UPSTREAM_SECURE_NAMING: def('REMORA_ERR_UPSTREAM_SECURE_NAMING', 503, FLAGS.UpstreamConnectionFailure, 'upstream identity does not match the cluster (secure naming)'),
  REMORA_ERR_UPSTREAM_RESET: def('REMORA_ERR_UPSTREAM_RESET', 503, FLAGS.UpstreamConnectionTermination, 'upstream connection closed before the response'),
  REMORA_ERR_UPSTREAM_STREAM_RESET: def('REMORA_ERR_UPSTREAM_STREAM_RESET', 503, FLAGS.UpstreamRemoteReset, 'upstream reset the stream before the response'),
  REMORA_ERR_UPSTREAM_TIMEOUT: def('REMORA_ERR_UPSTREAM_TIMEOUT', 504, FLAGS.UpstreamRequestTimeout, 'upstream request timeout'),
  REMORA_ERR_UPSTREAM_PROTOCOL: def('REMORA_ERR_UPSTREAM_PROTOCOL', 502, FLAGS.UpstreamProtocolError, 'upstream sent an invalid HTTP response'),
  REMORA_ERR_BAD_REQUEST: def('REMORA_ERR_BAD_REQUEST', 400, FLAGS.DownstreamProtocolError, 'malformed HTTP request'),
  REMORA_ERR_BAD_FRAMING: def('REMORA_ERR_BAD_FRAMING', 400, FLAGS.DownstreamProtocolError, 'ambiguous or invalid message framing'),
  REMORA_ERR_BAD_PATH: def('REMORA_ERR_BAD_PATH', 400, FLAGS.DownstreamProtocolError, 'request path cannot be normalized safely'),
  REMORA_ERR_BAD_HOST: def('REMORA_ERR_BAD_HOST', 400, FLAGS.DownstreamProtocolError, 'missing, duplicate or invalid Host'),
  REMORA_ERR_TRANSFER_ENCODING: def('REMORA_ERR_TRANSFER_ENCODING', 501, FLAGS.DownstreamProtocolError, 'unsupported Transfer-Encoding'),
  REMORA_ERR_HEADERS_TOO_LARGE: def('REMORA_ERR_HEADERS_TOO_LARGE', 431, FLAGS.DownstreamProtocolError, 'request header block too large'),
  REMORA_ERR_TOO_MANY_HEADERS: def('REMORA_ERR_TOO_MANY_HEADERS', 431, FLAGS.DownstreamProtocolError, 'too many request headers'),
  REMORA_ERR_REQUEST_TIMEOUT: def('REMORA_ERR_REQUEST_TIMEOUT', 408, FLAGS.DownstreamProtocolError, 'request header timeout'),
  REMORA_ERR_METHOD_NOT_SUPPORTED: def('REMORA_ERR_METHOD_NOT_SUPPORTED', 405, FLAGS.DownstreamProtocolError, 'method not supported by the sidecar'),
  REMORA_ERR_PLAINTEXT_REFUSED: def('REMORA_ERR_PLAINTEXT_REFUSED', 403, FLAGS.DownstreamProtocolError, 'plaintext refused: mTLS is required (PeerAuthentication STRICT)'),
  REMORA_ERR_QUARANTINED: def('REMORA_ERR_QUARANTINED', 403, FLAGS.AuthzDenied, 'quarantined'),
  REMORA_ERR_AUTHZ_DENIED: def('REMORA_ERR_AUTHZ_DENIED', 403, FLAGS.AuthzDenied, 'RBAC: access denied'),
  REMORA_ERR_JWT_MALFORMED: def('REMORA_ERR_JWT_MALFORMED', 401, FLAGS.JwtDenied, 'Jwt is not in the form of Header.Payload.Signature'),
  REMORA_ERR_JWT_TOO_LARGE: def('REMORA_ERR_JWT_TOO_LARGE', 401, FLAGS.JwtDenied, 'Jwt is larger than 8 KiB'),
  REMORA_ERR_JWT_DUPLICATE: def('REMORA_ERR_JWT_DUPLICATE', 401, FLAGS.JwtDenied, 'Jwt location appears more than once'),
  REMORA_ERR_JWT_HEADER: def('REMORA_ERR_JWT_HEADER', 401, FLAGS.JwtDenied, 'Jwt header is not accepted'),
  REMORA_ERR_JWT_ALG: def('REMORA_ERR_JWT_ALG', 401, FLAGS.JwtDenied, 'Jwt algorithm is not accepted for this key'),
  REMORA_ERR_JWT_ISSUER: def('REMORA_ERR_JWT_ISSUER', 401, FLAGS.JwtDenied, 'Jwt issuer is not configured'),
  REMORA_ERR_JWT_UNKNOWN_KID: def('REMORA_ERR_JWT_UNKNOWN_KID', 401, FLAGS.JwtDenied, 'Jwt key id is not in the JWKS'),
  REMORA_ERR_JWT_SIGNATURE: def('REMORA_ERR_JWT_SIGNATURE', 401, FLAGS.JwtDenied, 'Jwt verification fails'),
  REMORA_ERR_JWT_EXPIRED: def('REMORA_ERR_JWT_EXPIRED', 401, FLAGS.JwtDenied, 'Jwt is expired'),
  REMORA_ERR_JWT_NOT_YET_VALID: def('REMORA_ERR_JWT_NOT_YET_VALID', 401, FLAGS.JwtDenied, 'Jwt not yet valid'),
  REMORA_ERR_JWT_AUDIENCE: def('REMORA_ERR_JWT_AUDIENCE', 401, FLAGS.JwtDenied, 'Audiences in Jwt are not allowed'),
  REMORA_ERR_JWT_CLAIMS: def('REMORA_ERR_JWT_CLAIMS', 401, FLAGS.JwtDenied, 'Jwt claims are not accepted'),
  REMORA_ERR_JWT_JWKS_UNAVAILABLE: def('REMORA_ERR_JWT_JWKS_UNAVAILABLE', 401, FLAGS.JwtDenied, 'Jwks remote fetch is failed'),
  REMORA_ERR_INTERNAL: def('REMORA_ERR_INTERNAL', 500, FLAGS.DownstreamProtocolError, 'internal proxy error'),
} as const satisfies Record<string, ProxyErrorDef>

export type ProxyErrorCode = keyof typeof PROXY_ERRORS

/** An error that becomes a proxy-generated response in the `rescue` stage. `detail` is safe to show (no secrets). */
export class ProxyError extends RemoraError<ProxyErrorCode> {
  readonly flag: ResponseFlag
  readonly detail: string | undefined
  constructor(code: ProxyErrorCode, detail?: string, options?: { cause?: unknown }) {
    const d = PROXY_ERRORS[code]
    super(code, d.status, detail ? `${d.message}: ${detail}` : d.message, options)
    this.flag = d.flag
    this.detail = detail
  }
}

/** One of the proxy's response errors, matched on its code (any catalog code, whatever made it). */
export function isProxyError(err: unknown): err is ProxyError {
  return isRemoraError(err) && Object.hasOwn(PROXY_ERRORS, err.code) && typeof (err as { flag?: unknown }).flag === 'string'
}

export function proxyError(code: ProxyErrorCode, detail?: string, cause?: unknown): ProxyError {
  return new ProxyError(code, detail, { cause })
}
