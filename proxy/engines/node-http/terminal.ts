import { proxyError, type Handler, type RequestContext } from '../../pipeline/index.js'
import type { Pool } from 'undici'
import { forward } from './forward.js'

// The node:http engine's terminal: sends the request to the target the route stage chose, streaming both ways.
export function createUpstreamHandler(): Handler {
  return async function upstream(ctx: RequestContext) {
    // node:http engine: its targets' pools are undici Pools (the raw engine has its own terminal).
    const route = ctx.route
    if (!route) throw proxyError('REMORA_ERR_INTERNAL', 'no route chosen')
    await forward(ctx, route.dispatcher as Pool, route, ctx.upgradeSocket ?? undefined)
  }
}
