import type tls from 'node:tls'
import type { PeerCertificate } from 'node:tls'
import { uriSans } from '../identity/index.js'
import type { Credentials } from './credentials.js'
import { RemoraError } from '../errors/index.js'
import { MESH_GROUPS } from '../identity/index.js'

/** Inbound: TLS 1.3 only, a client certificate is required and verified against the trust bundle. */
export function serverTlsOptions(c: Credentials): tls.SecureContextOptions & tls.TlsOptions {
  return {
    cert: c.certPem,
    key: c.keyPem,
    ca: c.caPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['http/1.1', 'h2', 'remora-tcp'],
    ecdhCurve: MESH_GROUPS,
  }
}

export class SecureNamingError extends RemoraError<'REMORA_ERR_UPSTREAM_SECURE_NAMING'> {
  constructor(message: string) {
    super('REMORA_ERR_UPSTREAM_SECURE_NAMING', 503, message)
  }
}

/**
 * Secure naming (Istio's term): the upstream's certificate must carry exactly one URI SAN and it
 * must be one of the identities the cluster expects. OpenSSL's chain validation still runs first;
 * this replaces only the host-name check.
 */
export function secureNamingCheck(identities: readonly string[]): (host: string, cert: PeerCertificate) => Error | undefined {
  const allowed = new Set(identities)
  const expected = identities.join(', ')
  return (_host, cert) => {
    const uris = uriSans(cert.subjectaltname ?? '')
    if (uris.length !== 1) return new SecureNamingError(`upstream certificate has ${uris.length} URI SANs, expected one of: ${expected}`)
    if (!allowed.has(uris[0]!)) return new SecureNamingError(`upstream presented ${uris[0]}, expected one of: ${expected}`)
    return undefined
  }
}
