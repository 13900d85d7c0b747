import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { algorithmsForJwk, type PublicJwk } from '../policy/index.js'

/** One public key ready to verify, with the algorithms pinned from its JWK (never from a token). */
export interface VerificationKey {
  readonly kid: string | null
  readonly algorithms: ReadonlySet<string>
  readonly key: KeyObject
}

/** An immutable set of keys. A source hands out the same object while the keys do not change. */
export interface KeySet {
  /** SHA-256 over the public members of every usable key: equal sets have equal fingerprints. */
  readonly fingerprint: string
  readonly keys: readonly VerificationKey[]
  readonly kids: readonly string[]
}

const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { RSA: ['kty', 'n', 'e'], EC: ['kty', 'crv', 'x', 'y'], OKP: ['kty', 'crv', 'x'] }

export interface SkippedKey {
  readonly index: number
  readonly kid: string | null
  readonly reason: string
}

/**
 * JWKS JSON → KeySet. Keys that cannot verify (symmetric, encryption-only, unknown type, bad
 * material) are skipped and reported by index and kid: never by their material. Only public members
 * are ever imported, so a private member in a fetched set is dropped, not used.
 */
export function buildKeySet(jwks: unknown): { set: KeySet; skipped: SkippedKey[] } {
  const keys: VerificationKey[] = []
  const skipped: SkippedKey[] = []
  const list = jwks !== null && typeof jwks === 'object' && Array.isArray((jwks as { keys?: unknown }).keys) ? ((jwks as { keys: unknown[] }).keys) : []
  const hash = createHash('sha256')
  list.forEach((raw, index) => {
    const jwk = raw as PublicJwk
    const kid = jwk !== null && typeof jwk === 'object' && typeof jwk.kid === 'string' ? jwk.kid : null
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return void skipped.push({ index, kid, reason: 'not an object' })
    const members = PUBLIC_MEMBERS[jwk.kty]
    if (!members) return void skipped.push({ index, kid, reason: `kty ${JSON.stringify(jwk.kty)} cannot verify (RSA, EC, OKP only)` })
    const algs = algorithmsForJwk(jwk)
    if (algs.length === 0) return void skipped.push({ index, kid, reason: 'no signature algorithm fits this key (alg/use/key_ops/crv)' })
    const pub: Record<string, unknown> = {}
    for (const m of members) pub[m] = jwk[m]
    let key: KeyObject
    try {
      key = createPublicKey({ key: pub as never, format: 'jwk' })
    } catch {
      return void skipped.push({ index, kid, reason: 'the key material does not import' })
    }
    keys.push({ kid, algorithms: new Set(algs), key })
    hash.update(JSON.stringify([kid, [...algs], members.map((m) => pub[m])]))
  })
  return { set: { fingerprint: hash.digest('hex'), keys, kids: keys.map((k) => k.kid).filter((k): k is string => k !== null) }, skipped }
}
