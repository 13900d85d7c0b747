import { FLAGS, isProxyError, proxyError, responseExtras, sendProxyResponse, type Handler, type RequestContext, type Stage } from '../pipeline/index.js'

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
        // Matched on the code: a catalog error answers as itself; anything else is a bug (500, logged).
        const known = isProxyError(err)
        const pe = known ? err : proxyError('REMORA_ERR_INTERNAL')
        if (!known) opts.onInternalError?.(err)
        ctx.flags.push(pe.flag)
        ctx.errorCode = pe.code
        ctx.errorDetail = pe.detail ?? null
        if (ctx.res.destroyed || ctx.flags.includes(FLAGS.DownstreamConnectionTermination)) return
        // The denial's reason and the trace link, for mesh peers only (the rules in responseExtras).
        ctx.bytesSent += sendProxyResponse(ctx.res, pe, responseExtras(ctx, pe.status, true) ?? undefined)
      }
    }
  }
}
