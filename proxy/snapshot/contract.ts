import { inflateRawSync, deflateRawSync } from 'node:zlib'
import type { JWK } from 'jose'
import { z } from 'zod'
import { validate, type PolicyDocument } from '../policy/index.js'
import { ClusterSchema, OutboundTrafficPolicySchema, QuarantineEntrySchema, formatPath, type ClusterConfig, type OutboundTrafficPolicy, type QuarantineEntry } from './clusters.js'

/** The JWS `typ` of a snapshot; a JWS with any other typ is not one. */
export const SNAPSHOT_TYP = 'remora-snapshot+jws'
/** The one algorithm snapshots are signed with (the control plane's P-256 key); pinned on both sides. */
export const SNAPSHOT_ALG = 'ES256'
/** A deflated snapshot inflates to at most this (a signed zip bomb still cannot exhaust memory). */
export const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024

export const SnapshotPayloadSchema = z.strictObject({
  apiVersion: z.literal('remora.dev/v1'),
  kind: z.literal('Snapshot'),
  version: z.string().min(1).max(64),
  trustDomain: z.string().min(1),
  rootNamespace: z.string().min(1),
  policies: z.array(z.unknown()),
  clusters: z.array(z.unknown()),
  jwks: z.strictObject({ keys: z.array(z.unknown()) }),
  trustBundle: z.string().includes('-----BEGIN CERTIFICATE-----'),
  /** Mesh-wide; a sidecar's own outbound.trafficPolicy wins. Absent: ALLOW_ANY. */
  outboundTrafficPolicy: OutboundTrafficPolicySchema.optional(),
  /** Quarantined identities, denied before any policy (absent: none). */
  quarantine: z.array(QuarantineEntrySchema).max(10_000).optional(),
})
/** One complete config; the same for every sidecar (each selects the policies for its workload). */
export type SnapshotPayload = z.output<typeof SnapshotPayloadSchema>

/** A snapshot that passed every check: what a sidecar swaps in. */
export interface CheckedSnapshot {
  readonly version: string
  readonly policies: PolicyDocument[]
  readonly clusters: ClusterConfig[]
  readonly trustBundle: string
  readonly outboundTrafficPolicy?: OutboundTrafficPolicy
  readonly quarantine?: readonly QuarantineEntry[]
}

/** Why a snapshot was refused: which check, and one line per problem. Callers map `reason` to their error code. */
export type SnapshotRefusal = { readonly ok: false; readonly reason: 'signature' | 'invalid' | 'policies'; readonly lines: readonly string[] }
export type SnapshotResult<T> = { readonly ok: true; readonly value: T } | SnapshotRefusal

const refuse = (reason: SnapshotRefusal['reason'], lines: readonly string[]): SnapshotRefusal => ({ ok: false, reason, lines })

/** `Kind namespace/name`: what makes two policy documents the same one (defined twice = refused). */
export function policyId(doc: Pick<PolicyDocument, 'kind' | 'metadata'>): string {
  return `${doc.kind} ${doc.metadata.namespace}/${doc.metadata.name}`
}

/**
 * Signs a payload as the control plane sends it: deflated (`zip: "DEF"`, a critical header, so a
 * sidecar that does not know it refuses the snapshot instead of misreading it). Snapshots are
 * repetitive JSON: 100 policies and 100 clusters shrink ~13×.
 */
export async function signSnapshotPayload(payload: unknown, key: { readonly kid: string; readonly privateKey: CryptoKey }): Promise<string> {
  const body = deflateRawSync(Buffer.from(JSON.stringify(payload)))
  const { CompactSign } = await loadJose()
  return new CompactSign(body).setProtectedHeader({ alg: SNAPSHOT_ALG, kid: key.kid, typ: SNAPSHOT_TYP, zip: 'DEF', crit: ['zip'] }).sign(key.privateKey, { crit: { zip: true } })
}

/**
 * jose is loaded on first use (a snapshot to sign or verify): a sidecar with a static config never
 * needs it, and importing it at start costs every sidecar ≈ 3 MB (bench/hot-path.md).
 */
const loadJose = (): Promise<typeof import('jose')> => import('jose')

/** The control plane's public key as the sidecar pins it: ES256, whatever the JWK says. */
export async function importPinnedKey(jwk: JWK): Promise<CryptoKey> {
  const { importJWK } = await loadJose()
  return (await importJWK({ ...jwk, alg: SNAPSHOT_ALG }, SNAPSHOT_ALG)) as CryptoKey
}

/** Verifies the JWS with the pinned key (ES256 only, our typ, `zip` the only critical header) and parses the payload. */
export async function verifySnapshotJws(jws: string, key: CryptoKey): Promise<SnapshotResult<SnapshotPayload>> {
  let payload: Uint8Array
  let zip: unknown
  try {
    const { compactVerify } = await loadJose()
    const r = await compactVerify(jws, key, { algorithms: [SNAPSHOT_ALG], crit: { zip: true } })
    if (r.protectedHeader.typ !== SNAPSHOT_TYP) throw new Error(`typ ${String(r.protectedHeader.typ)}`)
    payload = r.payload
    zip = r.protectedHeader.zip
  } catch (err) {
    return refuse('signature', [(err as { code?: string }).code ?? (err as Error).message])
  }
  let json: unknown
  try {
    if (zip !== undefined && zip !== 'DEF') throw new Error(`unknown zip ${String(zip)}`)
    const bytes = zip === 'DEF' ? inflateRawSync(payload, { maxOutputLength: MAX_SNAPSHOT_BYTES }) : payload
    json = JSON.parse(new TextDecoder().decode(bytes))
  } catch (err) {
    return refuse('invalid', [`payload is not a (deflated) JSON snapshot: ${(err as Error).message.slice(0, 200)}`])
  }
  const r = SnapshotPayloadSchema.safeParse(json)
  if (!r.success) return refuse('invalid', r.error.issues.slice(0, 10).map((i) => `${formatPath(i.path)}: ${i.message}`))
  return { ok: true, value: r.data }
}

/**
 * The same validation the control plane ran (proxy/policy's validate() per document, duplicates
 * included) plus the cluster schema: a snapshot passes whole or is refused whole, never
 * half-applied. The documents arrive parsed, so no trip through YAML (~0.6 ms a policy).
 */
export function checkSnapshot(p: SnapshotPayload, expect: { readonly trustDomain: string }): SnapshotResult<CheckedSnapshot> {
  if (p.trustDomain !== expect.trustDomain) return refuse('invalid', [`trustDomain ${p.trustDomain} is not ${expect.trustDomain}`])
  const policies: PolicyDocument[] = []
  const errors: string[] = []
  const seen = new Set<string>()
  const opts = { trustDomains: [expect.trustDomain], rootNamespace: p.rootNamespace }
  p.policies.forEach((doc, i) => {
    const r = validate(doc, opts)
    for (const e of r.errors) errors.push(`policies[${i}] ${e.path}: ${e.message} (${e.code})`)
    if (!r.policy) return
    const id = policyId(r.policy)
    if (seen.has(id)) errors.push(`policies[${i}] metadata.name: ${id} is defined twice (REMORA_ERR_POLICY_DUPLICATE)`)
    seen.add(id)
    policies.push(r.policy)
  })
  if (errors.length) return refuse('policies', errors.slice(0, 20))
  const clusters: ClusterConfig[] = []
  const problems: string[] = []
  p.clusters.forEach((c, i) => {
    const r = ClusterSchema.safeParse(c)
    if (r.success) clusters.push(r.data)
    else for (const iss of r.error.issues) problems.push(`clusters[${i}].${formatPath(iss.path)}: ${iss.message}`)
  })
  if (problems.length) return refuse('invalid', problems.slice(0, 20))
  return { ok: true, value: { version: p.version, policies, clusters, trustBundle: p.trustBundle, ...(p.outboundTrafficPolicy ? { outboundTrafficPolicy: p.outboundTrafficPolicy } : {}), ...(p.quarantine?.length ? { quarantine: p.quarantine } : {}) } }
}
