import { FLAGS, ProxyError, proxyError, sendProxyResponse, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'

export interface RescueOptions {
  /** Called for errors that are not ProxyErrors (bugs): logged without request data. */
  readonly onInternalError?: (err: unknown) => void
}

// The one place where errors become responses. Sits inside the observability stages so that
// access log, metrics and traces see the proxy-generated status and flag.
export function createRescueStage(opts: RescueOptions = {}): Stage {
  return function rescue(next: Handler): Handler {
    return async function rescueStage(ctx: RequestContext) {
      try {
        await next(ctx)
      } catch (err) {
        const pe = err instanceof ProxyError ? err : proxyError('REMORA_ERR_INTERNAL')
        if (!(err instanceof ProxyError)) opts.onInternalError?.(err)
        ctx.flags.push(pe.flag)
        ctx.errorCode = pe.code
        ctx.errorDetail = pe.detail ?? null
        if (ctx.res.destroyed || ctx.flags.includes(FLAGS.DownstreamConnectionTermination)) return
        const extra: Record<string, string> = {}
        // The reason for a denial goes only to callers with a verified mesh identity.
        if (ctx.peer && ctx.decision && ctx.decision.action === 'DENY') extra['x-remora-denied-by'] = ctx.decision.reason
        // So is the link to this request's trace (set only for sampled spans with --jaeger-ui).
        if (ctx.peer && ctx.traceLink) extra['x-remora-trace'] = ctx.traceLink
        ctx.bytesSent += sendProxyResponse(ctx.res, pe, extra)
      }
    }
  }
}
