import type { ProxyError } from './errors.js'
import type { DownstreamResponse, RequestContext } from './types.js'

/**
 * Writes a proxy-generated response: the status, the flag in `x-remora-response-flags`, the
 * stable code in `x-remora-error-code` and a short text body. 403 keeps Envoy's exact body.
 */
export function sendProxyResponse(res: DownstreamResponse, err: ProxyError, extraHeaders?: Record<string, string>): number {
  if (res.headersSent) {
    res.destroy()
    return 0
  }
  const body = err.status === 403 && err.code === 'REMORA_ERR_AUTHZ_DENIED' ? 'RBAC: access denied' : `${err.message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-remora-response-flags': err.flag,
    'x-remora-error-code': err.code,
    ...extraHeaders,
  }
  // RFC 6750 §3.1, as Envoy's jwt_authn answers a bad token.
  if (err.flag === 'JW') headers['www-authenticate'] = 'Bearer error="invalid_token"'
  // After a framing error nothing more on this connection can be trusted.
  if (err.flag === 'DPE') headers.connection = 'close'
  res.writeHead(err.status, headers)
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
