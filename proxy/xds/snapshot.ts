import { inflateRawSync } from 'node:zlib'
import { compactVerify, importJWK, type JWK } from 'jose'
import { z } from 'zod'
import { ClusterSchema, formatPath, type ClusterConfig } from '../config/schema.js'
import { validate, type PolicyDocument } from '../policy/index.js'
import { XdsError } from './errors.js'

export const SNAPSHOT_TYP = 'remora-snapshot+jws'
/** A deflated snapshot inflates to at most this (a signed zip bomb still cannot exhaust memory). */
const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024

const PayloadSchema = z.strictObject({
  apiVersion: z.literal('remora.dev/v1'),
  kind: z.literal('Snapshot'),
  version: z.string().min(1).max(64),
  trustDomain: z.string().min(1),
  rootNamespace: z.string().min(1),
  policies: z.array(z.unknown()),
  clusters: z.array(z.unknown()),
  jwks: z.strictObject({ keys: z.array(z.unknown()) }),
  trustBundle: z.string().includes('-----BEGIN CERTIFICATE-----'),
})
export type SnapshotPayload = z.output<typeof PayloadSchema>

export interface CheckedSnapshot {
  readonly version: string
  readonly policies: PolicyDocument[]
  readonly clusters: ClusterConfig[]
  readonly trustBundle: string
}

export async function importPinnedKey(jwk: JWK): Promise<CryptoKey> {
  return (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey
}

/** Verifies the JWS with the pinned key (ES256 only, our typ) and parses the payload. */
export async function verifySnapshot(jws: string, key: CryptoKey): Promise<SnapshotPayload> {
  let payload: Uint8Array
  let zip: unknown
  try {
    // `zip` is the one critical header we understand: the control plane deflates the payload.
    const r = await compactVerify(jws, key, { algorithms: ['ES256'], crit: { zip: true } })
    if (r.protectedHeader.typ !== SNAPSHOT_TYP) throw new Error(`typ ${String(r.protectedHeader.typ)}`)
    payload = r.payload
    zip = r.protectedHeader.zip
  } catch (err) {
    throw new XdsError('REMORA_ERR_XDS_SIGNATURE', [(err as { code?: string }).code ?? (err as Error).message])
  }
  let json: unknown
  try {
    if (zip !== undefined && zip !== 'DEF') throw new Error(`unknown zip ${String(zip)}`)
    const bytes = zip === 'DEF' ? inflateRawSync(payload, { maxOutputLength: MAX_SNAPSHOT_BYTES }) : payload
    json = JSON.parse(new TextDecoder().decode(bytes))
  } catch (err) {
    throw new XdsError('REMORA_ERR_XDS_SNAPSHOT_INVALID', [`payload is not a (deflated) JSON snapshot: ${(err as Error).message.slice(0, 200)}`])
  }
  const r = PayloadSchema.safeParse(json)
  if (!r.success) throw new XdsError('REMORA_ERR_XDS_SNAPSHOT_INVALID', r.error.issues.slice(0, 10).map((i) => `${formatPath(i.path)}: ${i.message}`))
  return r.data
}

/**
 * The same validation the control plane ran (proxy/policy's validateDocuments) plus the cluster
 * schema: a snapshot passes whole or is refused whole, never half-applied.
 */
export function checkSnapshot(p: SnapshotPayload, expect: { trustDomain: string }): CheckedSnapshot {
  if (p.trustDomain !== expect.trustDomain) throw new XdsError('REMORA_ERR_XDS_SNAPSHOT_INVALID', [`trustDomain ${p.trustDomain} is not ${expect.trustDomain}`])
  // The documents arrive parsed: each goes through proxy/policy's validate() (what
  // validateDocuments runs per document, duplicates included) without a trip through YAML, which
  // cost ~0.6 ms per policy at every swap.
  const policies: PolicyDocument[] = []
  const errors: string[] = []
  const seen = new Set<string>()
  const opts = { trustDomains: [expect.trustDomain], rootNamespace: p.rootNamespace }
  p.policies.forEach((doc, i) => {
    const r = validate(doc, opts)
    for (const e of r.errors) errors.push(`policies[${i}] ${e.path}: ${e.message} (${e.code})`)
    if (!r.policy) return
    const id = `${r.policy.kind} ${r.policy.metadata.namespace}/${r.policy.metadata.name}`
    if (seen.has(id)) errors.push(`policies[${i}] metadata.name: ${id} is defined twice (REMORA_ERR_POLICY_DUPLICATE)`)
    seen.add(id)
    policies.push(r.policy)
  })
  if (errors.length) throw new XdsError('REMORA_ERR_XDS_POLICY_INVALID', errors.slice(0, 20))
  const clusters: ClusterConfig[] = []
  const problems: string[] = []
  p.clusters.forEach((c, i) => {
    const r = ClusterSchema.safeParse(c)
    if (r.success) clusters.push(r.data)
    else for (const iss of r.error.issues) problems.push(`clusters[${i}].${formatPath(iss.path)}: ${iss.message}`)
  })
  if (problems.length) throw new XdsError('REMORA_ERR_XDS_SNAPSHOT_INVALID', problems.slice(0, 20))
  return { version: p.version, policies, clusters, trustBundle: p.trustBundle }
}
