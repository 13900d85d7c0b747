import { createHash, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { validateDocuments } from '../../proxy/policy/index.js'
import { policyKey } from '../push/index.js'
import { ApplyBody, TRAFFIC_NAMESPACE, TRAFFIC_WORKLOAD, TokenBody, parseBody } from './bodies.js'
import type { ApiContext } from './context.js'
import { CpError } from './errors.js'
import { readJson, sendJson } from './http.js'

// The routes the CLI calls with the admin bearer token: apply, get, delete, sources (for
// `check --server`), status, join tokens and the traffic record.

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

/** The admin bearer token, compared as its hash in constant time; or REMORA_ERR_CP_UNAUTHENTICATED. */
export function requireAdmin(ctx: ApiContext, req: http.IncomingMessage): void {
  const h = req.headers.authorization ?? ''
  const m = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(h)
  const want = ctx.adminHash()
  if (!m || !want) throw new CpError('REMORA_ERR_CP_UNAUTHENTICATED')
  const got = Buffer.from(sha256(m[1]!), 'hex')
  const exp = Buffer.from(want.trim(), 'hex')
  if (got.length !== exp.length || !timingSafeEqual(got, exp)) throw new CpError('REMORA_ERR_CP_UNAUTHENTICATED')
}

function refuseWhenFed(ctx: ApiContext): void {
  if (ctx.feed) throw new CpError('REMORA_ERR_CP_POLICY_READ_ONLY', `policies come from ${ctx.feed.name}; change them there (kubectl apply / delete)`)
}

/** Validates the whole set first: an invalid apply stores nothing. */
export async function apply(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  refuseWhenFed(ctx)
  const body = parseBody(ApplyBody, await readJson(req))
  const r = validateDocuments(body.sources, { trustDomains: [ctx.trustDomain], rootNamespace: ctx.rootNamespace })
  if (r.errors.length) {
    throw new CpError('REMORA_ERR_CP_POLICY_INVALID', `${r.errors.length} error(s)`, { issues: r.errors, warnings: r.warnings })
  }
  const results: { kind: string; namespace: string; name: string; result: 'created' | 'configured' | 'unchanged' }[] = []
  const writes: [string, string][] = []
  const keys = r.policies.map((doc) => policyKey(doc.kind, doc.metadata.namespace ?? 'default', doc.metadata.name))
  const prevs = await Promise.all(keys.map((k) => ctx.store.get(k)))
  for (const [i, doc] of r.policies.entries()) {
    const text = stringifyYaml(doc)
    const prev = prevs[i]!
    const result = prev === null ? 'created' : prev === text ? 'unchanged' : 'configured'
    results.push({ kind: doc.kind, namespace: doc.metadata.namespace ?? 'default', name: doc.metadata.name, result })
    if (result !== 'unchanged') writes.push([keys[i]!, text])
  }
  // One write for the whole apply: neither a snapshot built meanwhile nor a crash sees part of it.
  if (!body.dryRun) await ctx.store.putAll(writes)
  const version = body.dryRun ? ctx.publisher.version : await ctx.publisher.settle()
  sendJson(res, 200, { applied: results, dryRun: body.dryRun, version, warnings: r.warnings })
}

/** What `get` and `check --server` read: the store's files, or the feed's valid set (what sidecars enforce). */
async function policySources(ctx: ApiContext): Promise<Map<string, string>> {
  const feed = ctx.feed
  if (!feed) return ctx.store.list('policies/')
  return new Map(ctx.publisher.policies.map((d) => [`${feed.name}:${policyKey(d.kind, d.metadata.namespace ?? 'default', d.metadata.name)}`, stringifyYaml(d)]))
}

export async function getPolicies(ctx: ApiContext, url: URL, res: http.ServerResponse): Promise<void> {
  const kind = url.searchParams.get('kind')
  const ns = url.searchParams.get('namespace')
  const name = url.searchParams.get('name')
  const items = []
  for (const [key, text] of await policySources(ctx)) {
    let doc: { kind?: string; metadata?: { name?: string; namespace?: string } }
    try {
      doc = parseYaml(text) as typeof doc
    } catch {
      continue
    }
    if (kind && doc.kind?.toLowerCase() !== kind.toLowerCase()) continue
    if (ns && doc.metadata?.namespace !== ns) continue
    if (name && doc.metadata?.name !== name) continue
    items.push({ key, kind: doc.kind, namespace: doc.metadata?.namespace, name: doc.metadata?.name, doc })
  }
  sendJson(res, 200, { items, version: ctx.publisher.version })
}

/** The live policy set as sources, for `remora check --server` (same input as the offline check). */
export async function getSources(ctx: ApiContext, res: http.ServerResponse): Promise<void> {
  const sources = [...(await policySources(ctx))].map(([source, text]) => ({ source, text }))
  sendJson(res, 200, { sources, version: ctx.publisher.version, trustDomain: ctx.trustDomain, rootNamespace: ctx.rootNamespace })
}

export async function deletePolicy(ctx: ApiContext, path: string, res: http.ServerResponse): Promise<void> {
  refuseWhenFed(ctx)
  const parts = path.slice('/v1/policies/'.length).split('/').map(decodeURIComponent)
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9.-]+$/.test(p))) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'expected /v1/policies/<Kind>/<namespace>/<name>')
  const [kind, ns, name] = parts as [string, string, string]
  // Kinds are case-insensitive on the CLI: find the stored one.
  const entries = await ctx.store.list(`policies/${ns}/`)
  const key = [...entries.keys()].find((k) => k.toLowerCase() === policyKey(kind, ns, name).toLowerCase())
  if (!key || !(await ctx.store.delete(key))) throw new CpError('REMORA_ERR_CP_NOT_FOUND', `${kind} ${ns}/${name}`)
  sendJson(res, 200, { deleted: { kind: key.split('/')[2], namespace: ns, name }, version: await ctx.publisher.settle() })
}

export async function createToken(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = parseBody(TokenBody, await readJson(req))
  const t = await ctx.createJoinToken(body.namespace, body.serviceAccount, body.ttlSeconds * 1000)
  ctx.deps.logger.info({ event: 'join_token_created', sub: t.spiffeId, expiresAt: t.expiresAt.toISOString() }, 'join token created')
  sendJson(res, 200, { token: t.token, spiffeId: t.spiffeId, expiresAt: t.expiresAt.toISOString() })
}

const SINCE = /^([1-9]\d{0,8})(ms|s|m|h|d)$/
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/**
 * `GET /v1/traffic?namespace=NS&workload=W&since=24h`: the recorded edges of every destination
 * workload (or one namespace, or one workload) merged over the window, each with its destination.
 * `since` defaults to the retention window and is capped at it.
 */
export async function getTraffic(ctx: ApiContext, url: URL, res: http.ServerResponse): Promise<void> {
  const namespace = url.searchParams.get('namespace') ?? undefined
  const workload = url.searchParams.get('workload') ?? undefined
  const since = url.searchParams.get('since')
  if (namespace !== undefined && !TRAFFIC_NAMESPACE.test(namespace)) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'namespace: expected a DNS label')
  if (workload !== undefined && !TRAFFIC_WORKLOAD.test(workload)) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'workload: expected letters, digits, ".", "_" and "-"')
  let sinceMs = ctx.traffic.retentionMs
  if (since !== null) {
    const m = SINCE.exec(since)
    if (!m) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'since: expected a duration like 30m, 24h or 7d')
    sinceMs = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]
  }
  sendJson(res, 200, await ctx.traffic.query({ namespace, workload, sinceMs }))
}
