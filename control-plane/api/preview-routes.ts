import type http from 'node:http'
import { z } from 'zod'
import { validateDocuments } from '../../proxy/policy/index.js'
import { groupEdges, previewChanges } from '../replay/index.js'
import { parseBody } from './bodies.js'
import type { ApiContext } from './context.js'
import { CpError } from './errors.js'
import { readJson, sendJson } from './http.js'

// POST /v1/preview (admin): what a candidate policy set would change for the traffic recorded in
// the retention window, before anything is applied. The candidate is validated as `apply` validates
// it (an invalid one is the same 422 with its issues); the record's edges are replayed against the
// policies in force and against them with the candidate applied (same kind/namespace/name
// replaces), and the edges whose decision changes come back with their counts. Nothing is stored.

const DURATION = /^([1-9][0-9]{0,6})(s|m|h|d)$/
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

export const PreviewBody = z.strictObject({
  sources: z.array(z.strictObject({ source: z.string().max(1024), text: z.string().max(1_000_000) })).min(1).max(1000),
  /** How far back to replay (at most the retention window); default: all of it. */
  since: z.string().regex(DURATION).optional(),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).max(63).optional(),
})

const sinceMs = (v: string | undefined): number => {
  const m = v === undefined ? null : DURATION.exec(v)
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : Number.MAX_SAFE_INTEGER
}

export async function preview(ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = parseBody(PreviewBody, await readJson(req))
  const r = validateDocuments(body.sources, { trustDomains: [ctx.trustDomain], rootNamespace: ctx.rootNamespace })
  if (r.errors.length) throw new CpError('REMORA_ERR_CP_POLICY_INVALID', `${r.errors.length} error(s)`, { issues: r.errors, warnings: r.warnings })
  const traffic = await ctx.traffic.query({ sinceMs: sinceMs(body.since), ...(body.namespace ? { namespace: body.namespace } : {}) })
  const o = { rootNamespace: ctx.rootNamespace }
  const changes = previewChanges(traffic.edges, ctx.publisher.policies, r.policies, o)
  sendJson(res, 200, {
    changes,
    /** Groups of edges replayed (a group: one caller, method, path, port into one workload). */
    replayed: groupEdges(traffic.edges).length,
    requests: traffic.edges.reduce((a, e) => a + e.count, 0),
    window: traffic.window,
    version: ctx.publisher.version,
    candidate: r.policies.map((d) => ({ kind: d.kind, namespace: d.metadata.namespace, name: d.metadata.name })),
    warnings: r.warnings,
  })
}
