import { STATUS_CODES } from 'node:http'
import { PROXY_ERRORS, type ProxyError, type ProxyErrorCode } from './errors.js'
import type { DownstreamResponse, RequestContext } from './types.js'

/**
 * The head and body of a proxy-generated response, written once for every writer (the `rescue`
 * stage through the engine's response, a front that answers before a request exists): the status,
 * the flag in `x-remora-response-flags`, the stable code in `x-remora-error-code`, a short text
 * body (Envoy's exact `RBAC: access denied` for an authorization denial), `www-authenticate` on a
 * bad token (RFC 6750 §3.1, as Envoy's jwt_authn), `connection: close` after a framing error.
 */
export function proxyResponseHead(code: ProxyErrorCode, message?: string): { status: number; reason: string; headers: Record<string, string | number>; body: string } {
  const d = PROXY_ERRORS[code]
  const body = d.status === 403 && code === 'REMORA_ERR_AUTHZ_DENIED' ? 'RBAC: access denied' : `${message ?? d.message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-remora-response-flags': d.flag,
    'x-remora-error-code': code,
  }
  if (d.flag === 'JW') headers['www-authenticate'] = 'Bearer error="invalid_token"'
  // After a framing error nothing more on this connection can be trusted.
  if (d.flag === 'DPE') headers.connection = 'close'
  return { status: d.status, reason: STATUS_CODES[d.status] ?? '', headers, body }
}

/** Writes a proxy-generated response (proxyResponseHead) with the response rules' extra headers. */
export function sendProxyResponse(res: DownstreamResponse, err: ProxyError, extraHeaders?: Record<string, string>): number {
  if (res.headersSent) {
    res.destroy()
    return 0
  }
  const { status, headers, body } = proxyResponseHead(err.code, err.message)
  res.writeHead(status, extraHeaders ? { ...headers, ...extraHeaders } : headers)
  res.end(body)
  return Buffer.byteLength(body)
}

/**
 * The response rules every engine and the `rescue` stage apply, written once: headers the sidecar
 * adds to a response on its way out, proxied (`generated` false) or its own (`generated` true).
 * - `x-remora-denied-by`: the reason of an authorization denial, only to a caller with a verified
 *   mesh identity;
 * - `x-remora-trace`: the link to this request's trace (sampled spans with --jaeger-ui), only to a
 *   mesh peer, on the sidecar's own answers and on proxied 5xx.
 * Returns null when nothing is added (the common case: no allocation).
 */
export function responseExtras(ctx: RequestContext, status: number, generated: boolean): Record<string, string> | null {
  if (ctx.peer === null) return null
  let out: Record<string, string> | null = null
  if (generated && ctx.decision !== null && ctx.decision.action === 'DENY') (out ??= {})['x-remora-denied-by'] = ctx.decision.reason
  if (ctx.traceLink !== null && (generated || status >= 500)) (out ??= {})['x-remora-trace'] = ctx.traceLink
  return out
}
