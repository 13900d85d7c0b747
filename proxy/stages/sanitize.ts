import { randomUUID } from 'node:crypto'
import { normalizePath, type PathNormalization } from '../policy/index.js'
import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'
import { HOP_BY_HOP, isSidecarOwnedHeader } from '../engines/common/index.js'

// Header hygiene and path normalization, before anything (authz, routing) looks at the request.
// Hop-by-hop fields (RFC 9110 §7.6.1) and any field named in `Connection` are removed; the
// caller's XFCC is always dropped (only this sidecar may assert a peer identity); `Expect` is
// answered by the sidecar (Envoy's default), so it is not forwarded. Every `x-remora-*` and
// `x-envoy-*` header is the sidecar's own namespace: a caller's copy is dropped here, before any
// stage reads the request (Envoy strips its internal headers from external requests), so the app
// can trust each one it receives. What the sidecar sets for the app (XFCC, x-forwarded-proto,
// x-request-id, trace context; JWT outputs in authnJwt) is set after this.
const DROP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'expect', 'x-forwarded-client-cert', 'host'])

export { isSidecarOwnedHeader }

export interface SanitizeOptions {
  readonly direction: 'inbound' | 'outbound'
  readonly pathNormalization: PathNormalization
  /** Inbound only: this sidecar's own SPIFFE ID, for XFCC's `By=`. */
  readonly ownId?: string
}

const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::(\d{1,5}))?$/

function countHost(raw: readonly string[]): number {
  let n = 0
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') n++
  return n
}

export function createSanitizeStage(opts: SanitizeOptions): Stage {
  const { direction, pathNormalization, ownId } = opts
  // Validated when the chain is built (CONVENTIONS.md): an inbound XFCC needs this sidecar's own ID for By=.
  if (direction === 'inbound' && !ownId) throw new TypeError('sanitize: an inbound stage needs ownId (this sidecar\'s SPIFFE ID, for XFCC By=)')
  const inbound = direction === 'inbound'
  return function sanitize(next: Handler): Handler {
    return async function sanitizeStage(ctx: RequestContext) {
      const { req } = ctx
      if (ctx.method === 'CONNECT') throw proxyError('REMORA_ERR_METHOD_NOT_SUPPORTED', 'CONNECT tunnels are not supported')
      if (countHost(req.rawHeaders) > 1) throw proxyError('REMORA_ERR_BAD_HOST', 'more than one Host header')
      const te = req.headers['transfer-encoding']
      if (te !== undefined && te.toLowerCase() !== 'chunked') throw proxyError('REMORA_ERR_TRANSFER_ENCODING', 'only "chunked" is accepted')

      let target = ctx.target
      let authority = req.headers.host ?? ''
      if (target.charCodeAt(0) !== 47 /* / */ && target !== '*') {
        // absolute-form (explicit proxy: HTTP_PROXY); RFC 9112 §3.2.2: its authority replaces Host.
        const m = /^http:\/\/([^/?#]*)(.*)$/i.exec(target)
        if (!m) throw proxyError('REMORA_ERR_BAD_REQUEST', 'request target must be origin-form or http:// absolute-form')
        authority = m[1]!
        target = m[2] || '/'
      }
      const hm = HOST_RE.exec(authority)
      if (!authority || !hm || authority.includes('@')) throw proxyError('REMORA_ERR_BAD_HOST', authority ? 'invalid Host' : 'missing Host')
      ctx.authority = authority.toLowerCase()
      ctx.hostPort = hm[1] !== undefined ? Number(hm[1]) : null
      ctx.host = hm[1] !== undefined ? ctx.authority.slice(0, ctx.authority.length - hm[1].length - 1) : ctx.authority

      if (target === '*') {
        if (ctx.method !== 'OPTIONS') throw proxyError('REMORA_ERR_BAD_PATH', '"*" is only valid for OPTIONS')
        ctx.path = '*'
        ctx.query = ''
      } else {
        const n = normalizePath(target, pathNormalization)
        if (!n.ok) throw proxyError('REMORA_ERR_BAD_PATH', n.reason)
        ctx.path = n.path
        ctx.query = n.query
      }

      const h = req.headers
      const conn = h.connection
      const named = conn ? conn.toLowerCase().split(',').map((s) => s.trim()) : null
      const out: Record<string, string | string[]> = {}
      for (const k in h) {
        if (DROP.has(k) || isSidecarOwnedHeader(k)) continue
        const v = h[k]
        if (v === undefined) continue
        if (named !== null && named.includes(k)) continue
        out[k] = v
      }
      out.host = authority
      if (inbound) {
        // Only a verified mesh peer may carry these through; from anyone else they are reset.
        if (ctx.peer) {
          out['x-forwarded-client-cert'] = `By=${ownId};Hash=${ctx.peer.certHash};URI=${ctx.peer.uri}`
          if (!out['x-forwarded-proto']) out['x-forwarded-proto'] = 'https'
        } else out['x-forwarded-proto'] = 'http'
      } else {
        out['x-forwarded-proto'] = 'http'
      }
      const rid = out['x-request-id']
      if (typeof rid === 'string' && rid.length > 0 && rid.length <= 128) ctx.requestId = rid
      else {
        ctx.requestId = randomUUID()
        out['x-request-id'] = ctx.requestId
      }
      // The `trace` stage's propagation headers (this sidecar's span as the parent) replace the caller's.
      const th = ctx.traceHeaders
      if (th !== null) for (const k in th) out[k] = th[k]!
      ctx.headers = out
      return next(ctx)
    }
  }
}
