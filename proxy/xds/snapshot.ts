import { checkSnapshot as checkPayload, verifySnapshotJws, type CheckedSnapshot, type SnapshotPayload, type SnapshotResult } from '../snapshot/index.js'
import { XdsError, type XdsErrorCode } from './errors.js'

// The snapshot contract lives in proxy/snapshot (shared with the control plane); here its refusals
// become the client's error codes, which the NACK lines carry.
const CODES: Record<'signature' | 'invalid' | 'policies', XdsErrorCode> = {
  signature: 'REMORA_ERR_XDS_SIGNATURE',
  invalid: 'REMORA_ERR_XDS_SNAPSHOT_INVALID',
  policies: 'REMORA_ERR_XDS_POLICY_INVALID',
}

function unwrap<T>(r: SnapshotResult<T>): T {
  if (r.ok) return r.value
  throw new XdsError(CODES[r.reason], r.lines)
}

/** Verifies the JWS with the pinned key and parses the payload, or throws XdsError (signature / invalid). */
export async function verifySnapshot(jws: string, key: CryptoKey): Promise<SnapshotPayload> {
  return unwrap(await verifySnapshotJws(jws, key))
}

/** Validates the payload as the control plane did, or throws XdsError: a snapshot passes whole or is refused whole. */
export function checkSnapshot(p: SnapshotPayload, expect: { trustDomain: string }): CheckedSnapshot {
  return unwrap(checkPayload(p, expect))
}

export { importPinnedKey, SNAPSHOT_TYP, type CheckedSnapshot, type SnapshotPayload } from '../snapshot/index.js'
