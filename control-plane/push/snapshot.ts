import { createHash } from 'node:crypto'
import { deflateRawSync } from 'node:zlib'
import { CompactSign } from 'jose'
import type { PolicyDocument } from '../../proxy/policy/index.js'
import { SIGNING_ALG, type SigningKey } from '../ca/index.js'

export const SNAPSHOT_TYP = 'remora-snapshot+jws'

/** An outbound cluster as sidecars receive it (the SidecarConfig cluster shape). */
export interface SnapshotCluster {
  readonly name: string
  readonly hosts: readonly string[]
  readonly endpoints: readonly string[]
  readonly identities: readonly string[]
}

/** One complete config; the same for every sidecar (each selects the policies for its workload). */
export interface SnapshotPayload {
  readonly apiVersion: 'remora.dev/v1'
  readonly kind: 'Snapshot'
  readonly version: string
  readonly trustDomain: string
  readonly rootNamespace: string
  readonly policies: readonly unknown[]
  readonly clusters: readonly SnapshotCluster[]
  readonly jwks: { readonly keys: readonly unknown[] }
  /** PEM roots the sidecar trusts: the current root plus any root still in its overlap period. */
  readonly trustBundle: string
}

export interface SignedSnapshot {
  readonly version: string
  readonly payload: SnapshotPayload
  /** Compact JWS (ES256, typ remora-snapshot+jws) over the payload's JSON. */
  readonly jws: string
}

/**
 * The version is a hash of the content: two replicas that see the same store publish the same
 * version, so `status` can say "ACKed by all" whichever replica a sidecar is connected to.
 */
export function buildSnapshot(input: {
  trustDomain: string
  rootNamespace: string
  policies: readonly (PolicyDocument | unknown)[]
  clusters: readonly SnapshotCluster[]
  trustBundle: string
}): SnapshotPayload {
  const body = { policies: input.policies, clusters: input.clusters, jwks: { keys: [] }, trustBundle: input.trustBundle, rootNamespace: input.rootNamespace }
  const version = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16)
  return {
    apiVersion: 'remora.dev/v1',
    kind: 'Snapshot',
    version,
    trustDomain: input.trustDomain,
    rootNamespace: input.rootNamespace,
    policies: input.policies,
    clusters: input.clusters,
    jwks: { keys: [] },
    trustBundle: input.trustBundle,
  }
}

/**
 * The payload is signed deflated (`zip: "DEF"`, a critical header: a sidecar that does not know it
 * refuses the snapshot instead of misreading it). Snapshots are repetitive JSON: 100 policies and
 * 100 clusters shrink ~13×, and the control plane writes each snapshot once per connected sidecar.
 */
export async function signSnapshot(payload: SnapshotPayload, key: SigningKey): Promise<SignedSnapshot> {
  const body = deflateRawSync(Buffer.from(JSON.stringify(payload)))
  const jws = await new CompactSign(body).setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: SNAPSHOT_TYP, zip: 'DEF', crit: ['zip'] }).sign(key.privateKey, { crit: { zip: true } })
  return { version: payload.version, payload, jws }
}
