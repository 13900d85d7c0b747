import type { MtlsMode } from '../policy/index.js'
import { proxyError, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'

// Connection-level mTLS is enforced by the inbound listener at accept time; this stage re-checks
// per request because the PeerAuthentication mode can tighten while a plaintext keep-alive
// connection is still open (PERMISSIVE → STRICT must not leave it usable).
// With port-level modes (portLevelMtls), a plaintext request is judged by the port it was
// redirected from.
export function createAuthnMtlsStage(mode: MtlsMode, modeFor?: (port: number) => MtlsMode, hasPortLevel = false): Stage {
  return function authnMtls(next: Handler): Handler {
    if (mode !== 'STRICT' && !hasPortLevel) return next
    return async function authnMtlsStage(ctx: RequestContext) {
      if (!ctx.peer) {
        const port = ctx.originalDst?.port
        const m = port === undefined || modeFor === undefined ? mode : modeFor(port)
        if (m === 'STRICT') throw proxyError('REMORA_ERR_PLAINTEXT_REFUSED')
      }
      return next(ctx)
    }
  }
}
