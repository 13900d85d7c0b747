import { createHash } from 'node:crypto'
import { parseSpiffeId, type SpiffeId } from './spiffe.js'

/** Who is on the other end of a verified mTLS connection. Computed once per connection. */
export interface PeerIdentity extends SpiffeId {
  /** Hex SHA-256 of the peer leaf certificate's DER, as XFCC's `Hash=`. */
  readonly certHash: string
}

/** The subset of Node's `PeerCertificate` we read (so tests can pass plain data). */
export interface PeerCertInput {
  readonly subjectaltname?: string | undefined
  readonly raw?: Buffer | undefined
}

export type PeerIdentityResult =
  | { ok: true; identity: PeerIdentity }
  | { ok: false; reason: string }

/**
 * A peer is accepted only with exactly one URI SAN that is a valid SPIFFE ID in one of the
 * accepted trust domains (SPIFFE X509-SVID §4.2: exactly one URI SAN).
 */
export function peerIdentityFromCert(cert: PeerCertInput | null | undefined, trustDomains: ReadonlySet<string>): PeerIdentityResult {
  if (!cert || !cert.raw) return { ok: false, reason: 'no peer certificate' }
  const uris = uriSans(cert.subjectaltname ?? '')
  if (uris.length === 0) return { ok: false, reason: 'peer certificate has no URI SAN' }
  if (uris.length > 1) return { ok: false, reason: `peer certificate has ${uris.length} URI SANs (exactly one is allowed)` }
  const id = parseSpiffeId(uris[0]!)
  if (!id) return { ok: false, reason: 'peer URI SAN is not a SPIFFE ID' }
  if (!trustDomains.has(id.trustDomain)) return { ok: false, reason: `peer trust domain ${id.trustDomain} is not trusted` }
  return { ok: true, identity: { ...id, certHash: createHash('sha256').update(cert.raw).digest('hex') } }
}

/** Node renders SANs as `DNS:a, URI:spiffe://…, IP Address:…`; values may be JSON-quoted when they contain commas. */
export function uriSans(subjectaltname: string): string[] {
  const out: string[] = []
  const re = /(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g
  for (let m = re.exec(subjectaltname); m; m = re.exec(subjectaltname)) {
    const v = m[1]!
    out.push(v.startsWith('"') ? (JSON.parse(v) as string) : v)
  }
  return out
}
