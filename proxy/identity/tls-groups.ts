import type tls from 'node:tls'

// The TLS 1.3 key-exchange groups the mesh offers, best first. On runtimes whose OpenSSL has it
// (Node 26: OpenSSL 3.5) that is the hybrid post-quantum X25519MLKEM768, as Linkerd 2.19 made its
// default between meshed pods; X25519 and P-256 follow, so a peer without ML-KEM (Node 20,
// OpenSSL 3.0) still connects, on X25519. Decided once, from OpenSSL's version.

export const PQ_GROUP = 'X25519MLKEM768'
const CLASSIC = 'X25519:prime256v1'

/**
 * OpenSSL 3.5 is the first with ML-KEM and the hybrid groups. Decided from the version, never by
 * trying: a failed `ecdhCurve` leaves an error on OpenSSL's queue that the next, unrelated call in
 * the process (a key import, say) then reports as its own.
 */
export function opensslHasMlKem(version: string = process.versions.openssl ?? ''): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version)
  if (!m) return false
  const major = Number(m[1])
  return major > 3 || (major === 3 && Number(m[2]) >= 5)
}

/** Whether this runtime's OpenSSL offers X25519MLKEM768. */
export const POST_QUANTUM = opensslHasMlKem()

/** The `ecdhCurve` list every mesh TLS context uses (clients and servers). */
export const MESH_GROUPS = POST_QUANTUM ? `${PQ_GROUP}:${CLASSIC}` : CLASSIC

/** The group a client-side TLS socket negotiated (`X25519MLKEM768`, `X25519`, `prime256v1`…); `unknown` where the runtime does not say. */
export function negotiatedGroup(s: tls.TLSSocket): string {
  const info = s.getEphemeralKeyInfo() as { name?: string } | null
  return info && typeof info.name === 'string' ? info.name : 'unknown'
}
