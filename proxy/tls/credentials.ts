import { X509Certificate, createPrivateKey } from 'node:crypto'
import tls from 'node:tls'
import { MESH_GROUPS } from '../identity/index.js'
import { parseSpiffeId, uriSans, type SpiffeId } from '../identity/index.js'
import { RemoraError } from '../errors/index.js'

/** The sidecar's own workload identity and trust bundle, ready for TLS. Secrets stay in memory only. */
export interface Credentials {
  readonly identity: SpiffeId
  readonly certPem: string
  readonly keyPem: string
  readonly caPem: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly serial: string
  readonly trustDomains: ReadonlySet<string>
  readonly trustBundle: readonly { subject: string; fingerprint256: string; notAfter: string }[]
  readonly clientContext: tls.SecureContext
}

/** A certificate, key or trust bundle that cannot be used; `field` names the config field at fault. */
export class CredentialError extends RemoraError<'REMORA_ERR_CONFIG_CREDENTIALS'> {
  constructor(
    readonly field: 'certFile' | 'keyFile' | 'caFile',
    message: string,
  ) {
    super('REMORA_ERR_CONFIG_CREDENTIALS', 400, message)
  }
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}

/**
 * Parses and checks a workload certificate, its key and the trust bundle: the leaf must carry
 * exactly one URI SAN that is a SPIFFE ID in `trustDomain`, be currently valid, match the key,
 * and chain to the bundle. Errors name the field and never include key material.
 */
export function buildCredentials(pems: { certPem: string; keyPem: string; caPem: string }, trustDomain: string, now: number): Credentials {
  const chain = splitPem(pems.certPem)
  if (chain.length === 0) throw new CredentialError('certFile', 'no PEM certificate found')
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(chain[0]!)
  } catch {
    throw new CredentialError('certFile', 'not a valid X.509 certificate')
  }
  const uris = uriSans(leaf.subjectAltName ?? '')
  if (uris.length !== 1) throw new CredentialError('certFile', uris.length === 0 ? 'certificate has no SPIFFE URI SAN' : `certificate has ${uris.length} URI SANs (exactly one SPIFFE ID is required)`)
  const identity = parseSpiffeId(uris[0]!)
  if (!identity) throw new CredentialError('certFile', `URI SAN ${uris[0]} is not a SPIFFE ID`)
  if (identity.trustDomain !== trustDomain) throw new CredentialError('certFile', `certificate trust domain ${identity.trustDomain} is not ${trustDomain}`)
  const notBefore = new Date(leaf.validFrom)
  const notAfter = new Date(leaf.validTo)
  if (now >= notAfter.getTime()) throw new CredentialError('certFile', `certificate expired at ${notAfter.toISOString()}`)
  if (now < notBefore.getTime()) throw new CredentialError('certFile', `certificate is not valid before ${notBefore.toISOString()}`)
  let key
  try {
    key = createPrivateKey(pems.keyPem)
  } catch {
    throw new CredentialError('keyFile', 'not a valid PEM private key')
  }
  if (!leaf.checkPrivateKey(key)) throw new CredentialError('keyFile', 'private key does not match the certificate')
  const roots = splitPem(pems.caPem)
  if (roots.length === 0) throw new CredentialError('caFile', 'no PEM certificate found in the trust bundle')
  const bundle: Credentials['trustBundle'][number][] = []
  let chained = false
  for (const pem of roots) {
    let ca: X509Certificate
    try {
      ca = new X509Certificate(pem)
    } catch {
      throw new CredentialError('caFile', 'trust bundle holds an invalid certificate')
    }
    bundle.push({ subject: ca.subject, fingerprint256: ca.fingerprint256, notAfter: new Date(ca.validTo).toISOString() })
    const issuerCert = chain.length > 1 ? new X509Certificate(chain[chain.length - 1]!) : leaf
    if (issuerCert.checkIssued(ca) && issuerCert.verify(ca.publicKey)) chained = true
    if (chain.length === 1 && leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) chained = true
  }
  if (!chained) throw new CredentialError('certFile', 'certificate is not issued by any CA in the trust bundle (caFile)')
  const clientContext = tls.createSecureContext({ cert: pems.certPem, key: pems.keyPem, ca: pems.caPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ecdhCurve: MESH_GROUPS })
  return {
    identity,
    certPem: pems.certPem,
    keyPem: pems.keyPem,
    caPem: pems.caPem,
    notBefore,
    notAfter,
    serial: leaf.serialNumber,
    trustDomains: new Set([trustDomain]),
    trustBundle: bundle,
    clientContext,
  }
}

/**
 * Holds the current credentials; listeners (the inbound TLS server, upstream connectors) read
 * `current` at handshake time, so a rotation applies to new connections without dropping any.
 */
export class CredentialStore {
  #current: Credentials | null
  readonly #listeners = new Set<(c: Credentials) => void>()
  /** `null` when the sidecar starts before its control plane issued it a certificate. */
  constructor(initial: Credentials | null) {
    this.#current = initial
  }
  /** The current credentials; only read where `hasCredentials` holds (no config means no connections). */
  get current(): Credentials {
    if (!this.#current) throw new Error('no workload credentials yet')
    return this.#current
  }
  get hasCredentials(): boolean {
    return this.#current !== null
  }
  update(next: Credentials): void {
    this.#current = next
    for (const fn of this.#listeners) fn(next)
  }
  onChange(fn: (c: Credentials) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }
  /** Every mTLS connection this sidecar opened, by negotiated key-exchange group (see groups.ts). */
  readonly handshakes = new Map<string, number>()
  readonly #onHandshake = new Set<(group: string, peer: string) => void>()
  /** Called by the dialer once per upstream connection (the client side is where Node tells the group). */
  noteHandshake(group: string, peer: string): void {
    this.handshakes.set(group, (this.handshakes.get(group) ?? 0) + 1)
    for (const fn of this.#onHandshake) fn(group, peer)
  }
  onHandshake(fn: (group: string, peer: string) => void): () => void {
    this.#onHandshake.add(fn)
    return () => this.#onHandshake.delete(fn)
  }
  async close(): Promise<void> {
    this.#listeners.clear()
    this.#onHandshake.clear()
  }
}
