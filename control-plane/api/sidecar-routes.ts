import { createHash } from 'node:crypto'
import type http from 'node:http'
import type { z } from 'zod'
import { TrafficReportSchema } from '../../proxy/snapshot/index.js'
import { JOIN_TOKEN_ISSUER } from '../ca/index.js'
import type { Registration } from '../discovery/index.js'
import { frame, type SidecarStream } from '../push/index.js'
import type { SidecarStatus } from '../status/index.js'
import { AckBody, BootstrapBody, CsrBody, NackBody, StreamHello, TRAFFIC_NAMESPACE, TRAFFIC_WORKLOAD, parseBody } from './bodies.js'
import type { ApiContext, TokenReviewer } from './context.js'
import { CpError } from './errors.js'
import { peerCertExpiry, peerOf, readJson, sendJson } from './http.js'

// The routes a sidecar calls: bootstrap (a join token or a platform token → its first certificate),
// renew (its certificate → a new one), stream (the long-lived snapshot push) and ACK/NACK.

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

/** A sidecar's node id: stable for one identity at one inbound address. */
export const nodeIdOf = (identity: string, address: string): string => sha256(`${identity}|${address}`).slice(0, 16)

/** A remora join token (our issuer), as opposed to a platform token for the reviewer; both paths verify fully. */
function isJoinToken(token: string): boolean {
  try {
    return (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown }).iss === JOIN_TOKEN_ISSUER
  } catch {
    return false
  }
}

export async function bootstrap(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = parseBody(BootstrapBody, await readJson(req))
  const spiffeId = ctx.tokenReviewer && !isJoinToken(body.token) ? await reviewToken(ctx, ctx.tokenReviewer, body.token) : await verifyJoinToken(ctx, body.token)
  refuseQuarantined(ctx, spiffeId, 'bootstrap')
  let issued
  try {
    issued = await ctx.authority.issue(body.csr, spiffeId)
  } catch (err) {
    ctx.deps.logger.warn({ event: 'bootstrap_refused', sub: spiffeId, code: (err as { code?: string }).code }, 'CSR refused')
    throw err
  }
  ctx.metrics.certs.inc({ kind: 'bootstrap' })
  ctx.deps.logger.info({ event: 'bootstrap', sub: spiffeId, serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'workload certificate issued')
  sendJson(res, 200, {
    certPem: issued.certPem,
    trustBundle: ctx.authority.trustBundle,
    signingKey: ctx.authority.signing.publicJwk,
    controlPlaneIdentity: ctx.identity,
    trustDomain: ctx.trustDomain,
  })
}

async function verifyJoinToken(ctx: ApiContext, token: string): Promise<string> {
  const v = await ctx.authority.verifyJoinToken(token)
  if (!v.ok) {
    ctx.deps.logger.warn({ event: 'bootstrap_refused', reason: v.reason, detail: v.detail }, 'join token refused')
    throw new CpError(v.reason === 'expired' ? 'REMORA_ERR_CP_TOKEN_EXPIRED' : 'REMORA_ERR_CP_TOKEN_INVALID', v.detail)
  }
  return v.claims.spiffeId
}

/** A platform token (Kubernetes): whoever the reviewer says it belongs to, and only that. Fails closed. */
async function reviewToken(ctx: ApiContext, review: TokenReviewer, token: string): Promise<string> {
  let r: Awaited<ReturnType<TokenReviewer>>
  try {
    r = await review(token)
  } catch (err) {
    r = { ok: false, reason: `TokenReview unavailable: ${(err as Error).message}` }
  }
  if (!r.ok) {
    ctx.deps.logger.warn({ event: 'bootstrap_refused', reason: 'token_review', detail: r.reason }, 'service-account token refused')
    throw new CpError('REMORA_ERR_CP_TOKEN_INVALID', r.reason)
  }
  return `spiffe://${ctx.trustDomain}/ns/${r.namespace}/sa/${r.serviceAccount}`
}

export async function renew(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const peer = peerOf(req, new Set([ctx.trustDomain]))
  refuseQuarantined(ctx, peer.uri, 'renew')
  const body = parseBody(CsrBody, await readJson(req))
  const issued = await ctx.authority.issue(body.csr, peer.uri)
  ctx.metrics.certs.inc({ kind: 'renew' })
  for (const s of ctx.hub.nodes()) if (s.identity === peer.uri) ctx.status.update(s.node, { certExpiry: issued.notAfter.toISOString() })
  ctx.deps.logger.info({ event: 'renew', sub: peer.uri, serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'workload certificate renewed')
  sendJson(res, 200, { certPem: issued.certPem, trustBundle: ctx.authority.trustBundle })
}

export async function stream(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const peer = peerOf(req, new Set([ctx.trustDomain]))
  const hello = parseBody(StreamHello, await readJson(req))
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(peer.path)
  if (!m) throw new CpError('REMORA_ERR_CP_CLIENT_CERT_REQUIRED', `${peer.uri} is not a workload identity (/ns/<ns>/sa/<sa>)`)
  const node = nodeIdOf(peer.uri, hello.address)
  const now = new Date(ctx.deps.clock.now()).toISOString()
  const reg: Registration = {
    node,
    identity: peer.uri,
    namespace: m[1]!,
    serviceAccount: m[2]!,
    service: hello.service,
    labels: hello.labels,
    address: hello.address,
    replica: ctx.replicaId,
    connected: true,
    disconnectedAt: null,
  }
  const prev = ctx.status.get(node)
  const st: SidecarStatus = {
    node,
    identity: peer.uri,
    address: hello.address,
    service: hello.service,
    replica: ctx.replicaId,
    connected: true,
    connectedSince: now,
    disconnectedAt: null,
    versionPushed: null,
    versionAcked: hello.version ?? prev?.versionAcked ?? null,
    ackedAt: prev?.ackedAt ?? null,
    lastNack: prev?.lastNack ?? null,
    certExpiry: peerCertExpiry(req),
  }
  ctx.status.set(st)
  req.socket.setKeepAlive(true, 10_000)
  req.socket.setNoDelay(true)
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-remora-node': node })
  res.write(frame({ type: 'hello', node, replica: ctx.replicaId }))
  const s: SidecarStream = { node, identity: peer.uri, address: hello.address, connectedSince: new Date(now), res, pushedVersion: hello.version }
  const current = ctx.publisher.current
  ctx.hub.add(s, current && current.version !== hello.version ? current : null)
  ctx.metrics.connected.set(ctx.hub.size)
  ctx.registry.register(reg)
  ctx.deps.logger.info({ event: 'sidecar_connected', node, identity: peer.uri, address: hello.address, version: hello.version }, 'sidecar stream open')
  res.once('close', () => {
    if (ctx.hub.get(node) !== s) return // replaced by a newer stream of the same sidecar
    ctx.hub.remove(s)
    ctx.metrics.connected.set(ctx.hub.size)
    if (ctx.closing()) return
    const at = new Date(ctx.deps.clock.now()).toISOString()
    ctx.registry.register({ ...reg, connected: false, disconnectedAt: at })
    ctx.status.update(node, { connected: false, disconnectedAt: at })
    ctx.deps.logger.info({ event: 'sidecar_disconnected', node, identity: peer.uri }, 'sidecar stream closed')
  })
}

export async function ack(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse, ok: boolean): Promise<void> {
  const peer = peerOf(req, new Set([ctx.trustDomain]))
  const raw = await readJson(req)
  const body = ok ? parseBody(AckBody, raw) : parseBody(NackBody, raw)
  const st = ctx.status.get(body.node)
  if (!st) throw new CpError('REMORA_ERR_CP_NOT_FOUND', `no stream for node ${body.node} on this replica`)
  if (st.identity !== peer.uri) throw new CpError('REMORA_ERR_CP_NODE_MISMATCH', `node ${body.node} is ${st.identity}, caller is ${peer.uri}`)
  const at = new Date(ctx.deps.clock.now()).toISOString()
  if (ok) {
    ctx.status.update(body.node, { versionAcked: body.version, ackedAt: at })
    ctx.metrics.acks.inc()
    if (body.version === ctx.publisher.version) ctx.metrics.ackLatency.observe(Math.max(0, ctx.deps.clock.now() - ctx.publisher.publishedAt) / 1000)
  } else {
    const errors = (body as z.infer<typeof NackBody>).errors
    ctx.status.update(body.node, { lastNack: { version: body.version, errors, at } })
    ctx.metrics.nacks.inc()
    ctx.deps.logger.warn({ event: 'snapshot_nacked', node: body.node, identity: peer.uri, version: body.version, errors }, 'sidecar rejected a snapshot')
  }
  ctx.events.emit(ok ? 'ack' : 'nack', { node: body.node, version: body.version })
  sendJson(res, 200, { ok: true })
}

/** A quarantined identity gets no certificate: neither a renewal nor a new bootstrap (its join tokens are void). */
function refuseQuarantined(ctx: ApiContext, identity: string, what: 'bootstrap' | 'renew'): void {
  const q = ctx.publisher.quarantine.find((e) => e.identity === identity)
  if (!q) return
  ctx.deps.logger.warn({ event: `${what}_refused_quarantined`, sub: identity, by: q.by, since: q.since }, 'certificate refused: the identity is quarantined')
  throw new CpError('REMORA_ERR_CP_QUARANTINED', `${identity} is quarantined since ${q.since} (${q.reason || 'no reason given'}); remora release it first`)
}

/**
 * A sidecar's traffic record since its last report (issue 17 item 1): schema-checked (strict), and
 * only its own: the destination's principal must be the caller's verified certificate identity and
 * its namespace that identity's, or 403 (a sidecar cannot report for another workload). Merged in
 * memory; the store is written once a second (control-plane/traffic).
 */
export async function reportTraffic(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  try {
    const peer = peerOf(req, new Set([ctx.trustDomain]))
    const report = parseBody(TrafficReportSchema, await readJson(req))
    const d = report.destination
    const ns = /^\/ns\/([^/]+)\/sa\/[^/]+$/.exec(peer.path)?.[1]
    if (d.principal !== peer.uri || d.namespace !== ns) {
      ctx.deps.logger.warn({ event: 'traffic_report_refused', sub: peer.uri, claimed: d.principal, namespace: d.namespace }, 'traffic report for another workload refused')
      throw new CpError('REMORA_ERR_CP_TRAFFIC_FOREIGN', `the report is for ${d.principal || '(none)'} in namespace ${d.namespace || '(none)'}; the caller is ${peer.uri}`)
    }
    if (!TRAFFIC_NAMESPACE.test(d.namespace) || !TRAFFIC_WORKLOAD.test(d.workload)) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'destination: namespace must be a DNS label and workload a name of letters, digits, ".", "_" and "-"')
    ctx.traffic.accept(report)
    ctx.metrics.trafficReports.inc({ result: 'accepted' })
    sendJson(res, 200, { ok: true, edges: report.edges.length })
  } catch (err) {
    ctx.metrics.trafficReports.inc({ result: 'refused' })
    throw err
  }
}
