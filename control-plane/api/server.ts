import https from 'node:https'
import type http from 'node:http'
import type net from 'node:net'
import { MESH_GROUPS } from '../../proxy/identity/index.js'
import { isCaError } from '../ca/index.js'
import { apply, createToken, deletePolicy, getPolicies, getSources, getTraffic, requireAdmin } from './admin-routes.js'
import type { ApiContext } from './context.js'
import { CpError, isCpError } from './errors.js'
import { sendError, sendJson } from './http.js'
import { ack, bootstrap, renew, reportTraffic, stream } from './sidecar-routes.js'
import { listQuarantine, quarantine, release } from './quarantine-routes.js'
import { preview } from './preview-routes.js'

/**
 * One HTTPS port (TLS 1.3) for everything. Routes say what they need: nothing (health, metrics),
 * a join token (bootstrap), a workload certificate (stream, ack, nack, renew, traffic reports) or the admin bearer
 * token (everything else under /v1/). Every refusal is a CpError with a stable code.
 */
export async function route(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://control-plane')
  const path = url.pathname
  const m = req.method ?? 'GET'
  try {
    if (path === '/healthz' && m === 'GET') return sendJson(res, 200, { ok: true, replica: ctx.replicaId, store: ctx.store.kind, version: ctx.publisher.version })
    if (path === '/metrics' && m === 'GET') {
      const body = await ctx.promRegistry.metrics()
      res.writeHead(200, { 'content-type': ctx.promRegistry.contentType })
      return void res.end(body)
    }
    if (m === 'GET' && ctx.ui.serve(path, res)) return
    if (m === 'POST' && path === '/v1/bootstrap') return await bootstrap(ctx, req, res)
    if (m === 'POST' && path === '/v1/stream') return await stream(ctx, req, res)
    if (m === 'POST' && path === '/v1/ack') return await ack(ctx, req, res, true)
    if (m === 'POST' && path === '/v1/nack') return await ack(ctx, req, res, false)
    if (m === 'POST' && path === '/v1/renew') return await renew(ctx, req, res)
    if (m === 'POST' && path === '/v1/traffic') return await reportTraffic(ctx, req, res)
    if (path.startsWith('/v1/')) {
      requireAdmin(ctx, req)
      if (m === 'POST' && path === '/v1/apply') return await apply(ctx, req, res)
      if (m === 'GET' && path === '/v1/policies') return await getPolicies(ctx, url, res)
      if (m === 'GET' && path === '/v1/sources') return await getSources(ctx, res)
      if (m === 'DELETE' && path.startsWith('/v1/policies/')) return await deletePolicy(ctx, path, res)
      if (m === 'GET' && path === '/v1/status') return sendJson(res, 200, await ctx.statusReport())
      if (m === 'POST' && path === '/v1/quarantine') return await quarantine(ctx, req, res)
      if (m === 'POST' && path === '/v1/release') return await release(ctx, req, res)
      if (m === 'GET' && path === '/v1/quarantine') return listQuarantine(ctx, res)
      if (m === 'POST' && path === '/v1/tokens') return await createToken(ctx, req, res)
      if (m === 'GET' && path === '/v1/traffic') return await getTraffic(ctx, url, res)
      if (m === 'POST' && path === '/v1/preview') return await preview(ctx, req, res)
    }
    throw new CpError('REMORA_ERR_CP_NOT_FOUND', `${m} ${path}`)
  } catch (err) {
    // Matched on codes: the API's own errors as they are, the CA's with their code and status, anything else is a bug (500, logged).
    const e = isCpError(err) ? err : isCaError(err) ? Object.assign(new CpError('REMORA_ERR_CP_BAD_REQUEST', err.message), { code: err.code, status: err.status }) : new CpError('REMORA_ERR_CP_INTERNAL')
    if (!isCpError(err) && !isCaError(err)) ctx.deps.logger.error({ event: 'api_internal_error', path, error: (err as Error).message }, 'internal error')
    ctx.metrics.refused.inc({ code: e.code })
    if (!res.headersSent) sendError(res, e)
    else res.end()
  }
}

/** The API server: client certificates requested, never required (routes decide); TLS 1.3 only. */
export async function listenApi(ctx: ApiContext, listen: { host: string; port: number }): Promise<{ server: https.Server; port: number; setContext(): void; close(): Promise<void> }> {
  const ctxOpts = (): https.ServerOptions => ({ cert: ctx.authority.serving.certPem, key: ctx.authority.serving.keyPem, ca: ctx.authority.trustBundle, minVersion: 'TLSv1.3', ecdhCurve: MESH_GROUPS })
  const server = https.createServer(
    {
      ...ctxOpts(),
      requestCert: true,
      rejectUnauthorized: false, // routes decide: bootstrap and the admin API take no client cert
      keepAliveTimeout: 120_000,
    },
    (req, res) => void route(ctx, req, res),
  )
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 30_000
  server.requestTimeout = 0 // streams are long-lived; request bodies are small and capped
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen.port, listen.host, () => {
      server.removeListener('error', reject)
      resolve()
    })
  })
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    // New handshakes get the current serving certificate and are verified against the current trust bundle.
    setContext: () => server.setSecureContext(ctxOpts()),
    close: () =>
      new Promise<void>((r) => {
        if (!server.listening) return r()
        server.close(() => r())
        server.closeAllConnections()
      }),
  }
}
