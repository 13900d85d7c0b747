import net from 'node:net'
import tls from 'node:tls'
import type { CredentialStore } from './credentials.js'
import { secureNamingCheck } from './secure-naming.js'

export interface MtlsDialTarget {
  readonly host: string
  readonly port: number
  /** SPIFFE IDs the server may present (secure naming). */
  readonly identities: readonly string[]
  /** SNI; omitted when it is an IP address. */
  readonly servername: string
}

/**
 * The one way both forwarding engines open an upstream mTLS connection: TLS 1.3 only, the
 * sidecar's current credentials read at each dial (rotation without rebuilding pools), chain
 * validation against the trust bundle, and the server's SPIFFE ID checked against `identities`.
 */
export function createMtlsDialer(target: MtlsDialTarget, creds: CredentialStore): () => tls.TLSSocket {
  const checkServerIdentity = secureNamingCheck(target.identities)
  const servername = net.isIP(target.servername) ? undefined : target.servername
  return () => {
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      secureContext: creds.current.clientContext,
      servername,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity,
      rejectUnauthorized: true,
    })
    socket.setNoDelay(true)
    return socket
  }
}
