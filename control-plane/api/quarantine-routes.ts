import { createHash } from 'node:crypto'
import type http from 'node:http'
import { parseSpiffeId } from '../../proxy/identity/index.js'
import type { QuarantineEntry } from '../../proxy/snapshot/index.js'
import { QuarantineBody, ReleaseBody, parseBody } from './bodies.js'
import type { ApiContext } from './context.js'
import { CpError } from './errors.js'
import { readJson, sendJson } from './http.js'

// Quarantine (issue 12): one admin call cuts a workload identity off mesh-wide. The entry goes to
// the store (quarantine/<sha256 of the identity>), every replica's publisher puts it in the next
// snapshot, every sidecar denies the identity before any policy as caller and callee and closes
// its open connections, and its certificate renewals are refused. The call answers once every
// connected sidecar ACKed that snapshot (or the wait ran out), with the time it took and the
// sidecars that did not.

const keyOf = (identity: string): string => `quarantine/${createHash('sha256').update(identity).digest('hex')}`

/** The identity, checked: a SPIFFE ID of this trust domain, never the control plane's own. */
function checkedIdentity(ctx: ApiContext, identity: string): string {
  const id = parseSpiffeId(identity)
  if (!id) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', `identity: "${identity}" is not a SPIFFE ID`)
  if (id.trustDomain !== ctx.trustDomain) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', `identity: ${identity} is not in this mesh's trust domain (${ctx.trustDomain})`)
  if (id.uri === ctx.identity) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'identity: the control plane itself cannot be quarantined')
  return id.uri
}

export interface Convergence {
  readonly version: string | null
  /** ms from the store write to the last ACK (or to the end of the wait). */
  readonly convergedMs: number
  readonly acked: number
  readonly pending: readonly { node: string; identity: string; versionAcked: string | null }[]
}

/** Until every connected sidecar ACKed `version`, or `waitMs` passed. */
async function converge(ctx: ApiContext, version: string | null, started: number, waitMs: number): Promise<Convergence> {
  const deadline = started + waitMs
  for (;;) {
    const st = await ctx.statusReport()
    const connected = st.sidecars.filter((s) => s.connected)
    const pending = connected.filter((s) => s.versionAcked !== version)
    const now = ctx.deps.clock.now()
    if (pending.length === 0 || now >= deadline) {
      return { version, convergedMs: now - started, acked: connected.length - pending.length, pending: pending.map((s) => ({ node: s.node, identity: s.identity, versionAcked: s.versionAcked })) }
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

export async function quarantine(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = parseBody(QuarantineBody, await readJson(req))
  const identity = checkedIdentity(ctx, body.identity)
  const started = ctx.deps.clock.now()
  const entry: QuarantineEntry = { identity, reason: body.reason, by: body.by, since: new Date(started).toISOString() }
  const prev = await ctx.store.get(keyOf(identity))
  if (prev === null) await ctx.store.put(keyOf(identity), JSON.stringify(entry))
  const version = await ctx.publisher.settle()
  ctx.deps.logger.warn({ event: 'quarantine', identity, by: body.by, reason: body.reason, version }, 'workload identity quarantined')
  const c = body.waitMs > 0 ? await converge(ctx, version, started, body.waitMs) : { version, convergedMs: 0, acked: 0, pending: [] }
  sendJson(res, 200, { quarantined: prev === null ? entry : (JSON.parse(prev) as QuarantineEntry), already: prev !== null, ...c })
}

export async function release(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = parseBody(ReleaseBody, await readJson(req))
  const identity = checkedIdentity(ctx, body.identity)
  const started = ctx.deps.clock.now()
  const prev = await ctx.store.get(keyOf(identity))
  if (prev === null) throw new CpError('REMORA_ERR_CP_NOT_FOUND', `${identity} is not quarantined`)
  await ctx.store.delete(keyOf(identity))
  const version = await ctx.publisher.settle()
  ctx.deps.logger.warn({ event: 'quarantine_released', identity, by: body.by, version }, 'workload identity released from quarantine')
  const c = body.waitMs > 0 ? await converge(ctx, version, started, body.waitMs) : { version, convergedMs: 0, acked: 0, pending: [] }
  sendJson(res, 200, { released: identity, ...c })
}

export function listQuarantine(ctx: ApiContext, res: http.ServerResponse): void {
  sendJson(res, 200, { quarantine: ctx.publisher.quarantine })
}
