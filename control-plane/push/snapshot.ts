import { createHash } from 'node:crypto'
import type { PolicyDocument } from '../../proxy/policy/index.js'
import { signSnapshotPayload, type OutboundTrafficPolicy, type QuarantineEntry, type SnapshotCluster } from '../../proxy/snapshot/index.js'
import type { SigningKey } from '../ca/index.js'

// Building and signing a snapshot; the wire contract (typ, algorithm, zip, schema) is
// proxy/snapshot's, the one the sidecars verify with.
export { SNAPSHOT_TYP, type SnapshotCluster } from '../../proxy/snapshot/index.js'

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
  /** Compact JWS (ES256, typ remora-snapshot+jws, deflated) over the payload's JSON. */
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
  outboundTrafficPolicy?: OutboundTrafficPolicy
  quarantine?: readonly QuarantineEntry[]
}): SnapshotPayload {
  const otp = {
    ...(input.outboundTrafficPolicy ? { outboundTrafficPolicy: input.outboundTrafficPolicy } : {}),
    ...(input.quarantine?.length ? { quarantine: [...input.quarantine] } : {}),
  }
  const body = { policies: input.policies, clusters: input.clusters, jwks: { keys: [] }, trustBundle: input.trustBundle, rootNamespace: input.rootNamespace, ...otp }
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
    ...otp,
  }
}

export async function signSnapshot(payload: SnapshotPayload, key: SigningKey): Promise<SignedSnapshot> {
  return { version: payload.version, payload, jws: await signSnapshotPayload(payload, key) }
}
