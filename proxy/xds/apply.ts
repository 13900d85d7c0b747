import { X509Certificate } from 'node:crypto'
import type { ClusterConfig } from '../config/schema.js'
import type { OutboundTrafficPolicy, QuarantineEntry } from '../snapshot/index.js'
import type { PolicyDocument } from '../policy/index.js'
import { buildCredentials, CredentialError, type Credentials, type CredentialStore } from '../tls/index.js'
import { XdsError } from './errors.js'
import { checkSnapshot, verifySnapshot } from './snapshot.js'
import { hasCode } from '../errors/index.js'
import type { TrafficReporting } from '../traffic/index.js'

/** What the client drives: the Sidecar (or, in the benchmark, a lightweight stand-in). */
export interface SnapshotTarget {
  readonly selfId: string
  readonly creds: CredentialStore
  applySnapshot(s: { version: string; policies: readonly PolicyDocument[]; clusters: readonly ClusterConfig[]; outboundTrafficPolicy?: OutboundTrafficPolicy; quarantine?: readonly QuarantineEntry[] }, credentials?: Credentials): string
  noteConfigRejected?(): void
  /** The traffic record to report (POST /v1/traffic every interval); absent or null: nothing is reported. */
  readonly traffic?: TrafficReporting | null
}

/** The workload's certificate as the client holds it. */
export interface Identity {
  readonly certPem: string
  readonly keyPem: string
  readonly trustBundle: string
  readonly notAfter: number
  readonly notBefore: number
  /**
   * Where the lifetime counts from for renewal: when the certificate arrived, or its notBefore if
   * later. The CA backdates notBefore (clock skew), which for a short lifetime would put the 70 %
   * mark in the past and renew in a loop.
   */
  readonly issuedAt: number
}

/** `receivedAt` null: a persisted certificate, whose arrival time is unknown (its notBefore is used). Null when unreadable. */
export function identityFrom(certPem: string, keyPem: string, trustBundle: string, receivedAt: number | null): Identity | null {
  try {
    const x = new X509Certificate(certPem)
    const notBefore = Date.parse(x.validFrom)
    return { certPem, keyPem, trustBundle, notAfter: Date.parse(x.validTo), notBefore, issuedAt: Math.max(notBefore, receivedAt ?? notBefore) }
  } catch {
    return null
  }
}

/** The identity as TLS credentials (chain, key match, SPIFFE SAN in the trust domain, validity), or REMORA_ERR_XDS_CREDENTIALS. */
export function credentialsOf(id: Identity, trustDomain: string, now: number): Credentials {
  try {
    return buildCredentials({ certPem: id.certPem, keyPem: id.keyPem, caPem: id.trustBundle }, trustDomain, now)
  } catch (err) {
    throw new XdsError('REMORA_ERR_XDS_CREDENTIALS', [hasCode(err, 'REMORA_ERR_CONFIG_CREDENTIALS') ? `${(err as CredentialError).field}: ${(err as Error).message}` : (err as Error).message])
  }
}

/**
 * verify → validate → build → atomic swap of one signed snapshot. Resolves with the applied version
 * and the identity in force after it (with the snapshot's trust bundle when that changed). Throws
 * XdsError, with nothing changed, on any failure: the caller NACKs and keeps the last good one.
 */
export async function applySnapshotJws(
  jws: string,
  ctx: { readonly signingKey: CryptoKey; readonly identity: Identity; readonly target: SnapshotTarget; readonly trustDomain: string; readonly now: number },
): Promise<{ version: string; identity: Identity }> {
  const payload = await verifySnapshot(jws, ctx.signingKey)
  const snap = checkSnapshot(payload, { trustDomain: ctx.trustDomain })
  // New credentials when the sidecar has none yet, or when the trust bundle changed (root rotation).
  const { target } = ctx
  let identity = ctx.identity
  let creds: Credentials | undefined
  if (!target.creds.hasCredentials || identity.trustBundle !== snap.trustBundle || target.creds.current.certPem !== identity.certPem) {
    identity = { ...identity, trustBundle: snap.trustBundle }
    creds = credentialsOf(identity, ctx.trustDomain, ctx.now)
  }
  try {
    target.applySnapshot({ version: snap.version, policies: snap.policies, clusters: snap.clusters, ...(snap.outboundTrafficPolicy ? { outboundTrafficPolicy: snap.outboundTrafficPolicy } : {}), ...(snap.quarantine ? { quarantine: snap.quarantine } : {}) }, creds)
  } catch (err) {
    throw new XdsError('REMORA_ERR_XDS_SNAPSHOT_INVALID', [`cannot build the snapshot: ${(err as Error).message}`])
  }
  return { version: snap.version, identity }
}
