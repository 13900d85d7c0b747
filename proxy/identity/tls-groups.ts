import tls from 'node:tls'

// The TLS 1.3 key-exchange groups the mesh offers, best first. On runtimes whose OpenSSL has it
// (Node 26: OpenSSL 3.5) that is the hybrid post-quantum X25519MLKEM768, as Linkerd 2.19 made its
// default between meshed pods; X25519 and P-256 follow, so a peer without ML-KEM (Node 20,
// OpenSSL 3.0) still connects, on X25519. Decided once, by asking OpenSSL.

export const PQ_GROUP = 'X25519MLKEM768'
const CLASSIC = 'X25519:prime256v1'

function supports(group: string): boolean {
  try {
    tls.createSecureContext({ ecdhCurve: group })
    return true
  } catch {
    return false
  }
}

/** Whether this runtime's OpenSSL offers X25519MLKEM768. */
export const POST_QUANTUM = supports(PQ_GROUP)

/** The `ecdhCurve` list every mesh TLS context uses (clients and servers). */
export const MESH_GROUPS = POST_QUANTUM ? `${PQ_GROUP}:${CLASSIC}` : CLASSIC

/** The group a client-side TLS socket negotiated (`X25519MLKEM768`, `X25519`, `prime256v1`…); `unknown` where the runtime does not say. */
export function negotiatedGroup(s: tls.TLSSocket): string {
  const info = s.getEphemeralKeyInfo() as { name?: string } | null
  return info && typeof info.name === 'string' ? info.name : 'unknown'
}
