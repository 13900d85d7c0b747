import { z } from 'zod'
import { CpError } from './errors.js'

// Request bodies of the API, checked once at the boundary (CONVENTIONS.md habit 5).
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

export const StreamHello = z.strictObject({
  service: z.string().regex(DNS_LABEL).max(63),
  labels: z.record(z.string().max(253), z.string().max(253)).default({}),
  address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/),
  version: z.string().max(64).nullable().default(null),
})
export const AckBody = z.strictObject({ node: z.string().max(64), version: z.string().max(64) })
export const NackBody = z.strictObject({ node: z.string().max(64), version: z.string().max(64), errors: z.array(z.string().max(2000)).max(50) })
export const CsrBody = z.strictObject({ csr: z.string().min(1).max(16_384) })
export const BootstrapBody = z.strictObject({ token: z.string().min(1).max(8192), csr: z.string().min(1).max(16_384) })
export const ApplyBody = z.strictObject({ sources: z.array(z.strictObject({ source: z.string().max(1024), text: z.string().max(1_000_000) })).min(1).max(1000), dryRun: z.boolean().default(false) })
export const TokenBody = z.strictObject({
  namespace: z.string().regex(DNS_LABEL),
  serviceAccount: z.string().regex(DNS_LABEL),
  ttlSeconds: z.number().int().min(1).max(30 * 24 * 3600).default(3600),
})

/** A traffic report's destination names store-key segments (traffic/<namespace>/<workload>/…). */
export const TRAFFIC_NAMESPACE = DNS_LABEL
export const TRAFFIC_WORKLOAD = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/

/** The body as `schema` describes it, or REMORA_ERR_CP_BAD_REQUEST naming the first bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body)
  if (!r.success) {
    const i = r.error.issues[0]!
    throw new CpError('REMORA_ERR_CP_BAD_REQUEST', `${i.path.join('.') || '(body)'}: ${i.message}`)
  }
  return r.data
}

export const QuarantineBody = z.strictObject({
  identity: z.string().max(512),
  reason: z.string().max(512).default(''),
  /** Who asked (the operator's name as the CLI reports it; the admin token is the authentication). */
  by: z.string().max(128).regex(/^[\x20-\x7e]*$/, 'printable ASCII').default('unknown'),
  /** How long to wait for every connected sidecar's ACK before answering (0: do not wait). */
  waitMs: z.number().int().min(0).max(120_000).default(10_000),
})
export const ReleaseBody = z.strictObject({
  identity: z.string().max(512),
  by: z.string().max(128).regex(/^[\x20-\x7e]*$/, 'printable ASCII').default('unknown'),
  waitMs: z.number().int().min(0).max(120_000).default(10_000),
})
