import { randomBytes } from 'node:crypto'
import { calculateJwkThumbprint, exportJWK, generateKeyPair as joseGenerateKeyPair, importJWK, jwtVerify, SignJWT, errors as joseErrors, type JWK } from 'jose'
import { parseSpiffeId } from '../../proxy/identity/index.js'
import type { Clock } from './ca.js'

/**
 * The control plane's signing key (ES256): it signs join tokens and config snapshots. Sidecars
 * pin its public JWK at bootstrap. One key shared by every replica (kept in the store).
 */
export interface SigningKey {
  readonly kid: string
  readonly privateKey: CryptoKey
  readonly publicKey: CryptoKey
  /** Public JWK with kid, alg and use: what sidecars pin. */
  readonly publicJwk: JWK
}

export const SIGNING_ALG = 'ES256'
export const JOIN_TOKEN_TYP = 'remora-join+jwt'
export const JOIN_TOKEN_ISSUER = 'remora-control-plane'
export const JOIN_TOKEN_AUDIENCE = 'remora-bootstrap'

export async function generateSigningKey(): Promise<{ key: SigningKey; privateJwk: JWK }> {
  const { privateKey } = await joseGenerateKeyPair(SIGNING_ALG, { extractable: true })
  const privateJwk = await exportJWK(privateKey)
  privateJwk.kid = await calculateJwkThumbprint(privateJwk)
  privateJwk.alg = SIGNING_ALG
  return { key: await importSigningKey(privateJwk), privateJwk }
}

export async function importSigningKey(privateJwk: JWK): Promise<SigningKey> {
  if (privateJwk.kty !== 'EC' || privateJwk.crv !== 'P-256' || !privateJwk.d) throw new Error('the signing key must be a private EC P-256 JWK')
  const { d: _d, ...pub } = privateJwk
  const kid = privateJwk.kid ?? (await calculateJwkThumbprint(pub))
  const publicJwk: JWK = { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, kid, alg: SIGNING_ALG, use: 'sig' }
  const privateKey = (await importJWK({ ...privateJwk, alg: SIGNING_ALG }, SIGNING_ALG)) as CryptoKey
  const publicKey = (await importJWK(publicJwk, SIGNING_ALG)) as CryptoKey
  return { kid, privateKey, publicKey, publicJwk }
}

export interface JoinTokenClaims {
  readonly spiffeId: string
  readonly expiresAt: Date
  readonly jti: string
}

/** A join token: a JWT for exactly one workload identity (sub = its SPIFFE ID), short-lived. */
export async function createJoinToken(key: SigningKey, spiffeId: string, ttlMs: number, deps: { clock: Clock }): Promise<{ token: string } & JoinTokenClaims> {
  const id = parseSpiffeId(spiffeId)
  if (!id || id.path === '') throw new Error(`not a workload SPIFFE ID: ${spiffeId}`)
  const now = Math.floor(deps.clock.now() / 1000)
  const exp = now + Math.max(1, Math.round(ttlMs / 1000))
  const jti = randomBytes(12).toString('base64url')
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: JOIN_TOKEN_TYP })
    .setIssuer(JOIN_TOKEN_ISSUER)
    .setAudience(JOIN_TOKEN_AUDIENCE)
    .setSubject(id.uri)
    .setIssuedAt(now)
    .setNotBefore(now - 60)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key.privateKey)
  return { token, spiffeId: id.uri, expiresAt: new Date(exp * 1000), jti }
}

export type JoinTokenRefusal = 'expired' | 'invalid'

/**
 * Strict verification: alg must be ES256 (so `none` and HS256-with-the-public-key are refused),
 * typ, issuer and audience must be ours, the signature must be the pinned key's, `sub` must be a
 * workload SPIFFE ID. Returns why it was refused, never the token.
 */
export async function verifyJoinToken(
  key: SigningKey,
  token: string,
  deps: { clock: Clock },
): Promise<{ ok: true; claims: JoinTokenClaims } | { ok: false; reason: JoinTokenRefusal; detail: string }> {
  try {
    const { payload } = await jwtVerify(token, key.publicKey, {
      algorithms: [SIGNING_ALG],
      typ: JOIN_TOKEN_TYP,
      issuer: JOIN_TOKEN_ISSUER,
      audience: JOIN_TOKEN_AUDIENCE,
      currentDate: new Date(deps.clock.now()),
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
    })
    const id = parseSpiffeId(String(payload.sub))
    if (!id || id.path === '') return { ok: false, reason: 'invalid', detail: 'sub is not a workload SPIFFE ID' }
    return { ok: true, claims: { spiffeId: id.uri, expiresAt: new Date(payload.exp! * 1000), jti: String(payload.jti) } }
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return { ok: false, reason: 'expired', detail: 'the join token has expired' }
    const code = (err as { code?: string }).code ?? 'ERR_JOSE'
    const detail =
      code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
        ? 'signature does not verify with the control-plane key'
        : code === 'ERR_JOSE_ALG_NOT_ALLOWED'
          ? 'algorithm not allowed (ES256 only)'
          : code === 'ERR_JWS_INVALID' || code === 'ERR_JWT_INVALID'
            ? 'malformed token'
            : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
              ? `claim check failed: ${(err as { claim?: string }).claim ?? 'claim'}`
              : `token refused (${code})`
    return { ok: false, reason: 'invalid', detail }
  }
}
