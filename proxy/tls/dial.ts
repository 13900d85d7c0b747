import net from 'node:net'
import tls from 'node:tls'
import type { CredentialStore } from './credentials.js'
import { secureNamingCheck } from './secure-naming.js'
import { negotiatedGroup } from '../identity/index.js'

const HTTP1 = ['http/1.1']

/** The ALPN protocols of the sidecar-to-sidecar hop. */
export const MESH_ALPN = { http1: 'http/1.1', h2: 'h2', tcp: 'remora-tcp' } as const

export interface MtlsDialTarget {
  readonly host: string
  readonly port: number
  /** SPIFFE IDs the server may present (secure naming). */
  readonly identities: readonly string[]
  /** SNI; omitted when it is an IP address. */
  readonly servername: string
  /** ALPN to offer (default `http/1.1`): `h2` for HTTP/2 between sidecars, `remora-tcp` for an opaque TCP stream. */
  readonly alpn?: readonly string[]
}

/**
 * The one way both forwarding engines open an upstream mTLS connection: TLS 1.3 only, the
 * sidecar's current credentials read at each dial (rotation without rebuilding pools), chain
 * validation against the trust bundle, and the server's SPIFFE ID checked against `identities`.
 */
export function createMtlsDialer(target: MtlsDialTarget, creds: CredentialStore): (onread?: net.OnReadOpts | null) => tls.TLSSocket {
  const checkServerIdentity = secureNamingCheck(target.identities)
  const servername = net.isIP(target.servername) ? undefined : target.servername
  const ALPNProtocols = [...(target.alpn ?? HTTP1)]
  return (onread) => {
    // onread (reused read buffers) is a net.Socket option tls.connect passes on; @types/node omits it.
    const socket = tls.connect({
      ...((onread ? { onread } : {}) as tls.ConnectionOptions),
      host: target.host,
      port: target.port,
      secureContext: creds.current.clientContext,
      servername,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols,
      checkServerIdentity,
      rejectUnauthorized: true,
    })
    socket.setNoDelay(true)
    socket.once('secureConnect', () => creds.noteHandshake(negotiatedGroup(socket), `${target.host}:${target.port}`))
    return socket
  }
}
