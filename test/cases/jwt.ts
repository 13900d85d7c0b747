// The JWT attack matrix: one row per attack on JWT verification or per behaviour of Istio's
// RequestAuthentication, each with the status a sidecar must answer and, for a 401, the stable
// code. Rows are declarative; jwt-sidecar.test.ts forges the tokens and replays every row through
// a running sidecar (real listener, real JWKS endpoints on loopback, the app counting hits).
import type { JwtErrorCode } from '../../proxy/authn/index.js'

export const ISS = 'https://issuer.test'
export const BACKUP_ISS = 'https://backup.test'
export const NEVER_ISS = 'https://never.test'
export const INLINE_ISS = 'https://inline.test'

/** Who signs: a key of the issuer's JWKS, a key nobody published, or an attack. */
export type Signer =
  | 'rsa' // RS256, kid rsa-1, JWK with alg
  | 'ec' // ES256, kid ec-1, JWK without alg (derived from kty/crv)
  | 'ed' // EdDSA, inline JWKS of INLINE_ISS
  | 'rsa2' // RS256, kid rsa-2, published only after rotation
  | 'backup' // ES256 of BACKUP_ISS
  | 'never' // ES256 of NEVER_ISS (its JWKS endpoint never answers)
  | 'attacker' // RS256 key in no JWKS
  | 'none' // alg none, empty signature
  | 'hs256-rsa-pub' // HMAC-SHA256 keyed with the RSA public key PEM (alg confusion)

/** A claim value relative to the sidecar's clock: { $rel: -59 } = now - 59 s. */
export type Claim = unknown | { $rel: number }

export interface TokenSpec {
  readonly sign: Signer
  /** Header `alg`; default the signer's. */
  readonly alg?: string
  /** Header `kid`; default the signer's; null = none. */
  readonly kid?: string | null
  readonly header?: Record<string, unknown>
  /** Over the defaults {iss: ISS, sub: alice, aud: orders, iat: now, exp: now + 1 h}. */
  readonly claims?: Record<string, Claim>
  readonly drop?: readonly string[]
  readonly tamper?: 'payload' | 'signature' | 'truncate' | 'drop-signature' | 'pad-9k'
}

export type Send =
  | 'bearer'
  | 'bearer-lowercase'
  | 'two-authorization'
  | 'x-token' // INLINE_ISS's configured header
  | 'x-api-token' // a header no rule names
  | 'query-access_token' // not configured: Istio's default parameter is not remora's
  | 'basic'

/** What happens to the world before the row's request. Steps run in row order. */
export type Step = 'rotate' | 'backup-down' | 'advance-61s'
// rotate: the issuer publishes rsa-2 and the clock moves past the refetch cooldown (31 s).

export interface JwtCase {
  readonly name: string
  /** Where the attack or the behaviour comes from. */
  readonly source: string
  readonly token?: TokenSpec
  /** Default bearer. */
  readonly send?: Send
  /** Default /any (requestPrincipals ["*"]). */
  readonly path?: string
  /** Extra headers the caller sends (spoofing). */
  readonly headers?: Record<string, string>
  readonly step?: Step
  readonly expect: 200 | 401 | 403
  readonly code?: JwtErrorCode
  /** Headers the app must (string) or must not (null) see; `$sub` etc. are not interpolated. */
  readonly appSees?: Record<string, string | null>
  /** The same token as the previous row: served from the verified-token cache. */
  readonly sameTokenAsPrevious?: boolean
  readonly cached?: boolean
  /** Fetches of ISS's JWKS endpoint this row causes (rotation: 1; an unknown kid inside the cooldown: 0). */
  readonly jwksFetches?: number
}

const RFC8725 = 'https://www.rfc-editor.org/rfc/rfc8725'
const RFC7519 = 'https://www.rfc-editor.org/rfc/rfc7519'
const RFC7515 = 'https://www.rfc-editor.org/rfc/rfc7515'
const RFC6750 = 'https://www.rfc-editor.org/rfc/rfc6750'
const AUTH0 = 'https://auth0.com/blog/critical-vulnerabilities-in-json-web-token-libraries/'
const CVE_JWK = 'https://nvd.nist.gov/vuln/detail/CVE-2018-0114'
const ISTIO_RA = 'https://istio.io/latest/docs/reference/config/security/request_authentication/'
const ISTIO_JWT = 'https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/'
const ISTIO_COND = 'https://istio.io/latest/docs/reference/config/security/conditions/'
const ENVOY = 'https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter'
const ISSUE = 'remora issue 05 (JWT)'

export const jwtCases: readonly JwtCase[] = [
  // --- happy paths, one per algorithm family ---
  { name: 'RS256 from the fetched JWKS', source: ISTIO_RA, token: { sign: 'rsa' }, expect: 200, appSees: { authorization: null, 'x-jwt-sub': 'alice' } },
  { name: 'ES256, the algorithm derived from kty/crv (JWK without alg)', source: RFC8725 + '#section-3.1', token: { sign: 'ec' }, expect: 200 },
  { name: 'EdDSA from an inline JWKS in a configured header, forwarded as is', source: ISTIO_RA, token: { sign: 'ed', claims: { iss: INLINE_ISS } }, send: 'x-token', expect: 200, appSees: { 'x-token': '<token>' } },
  { name: 'the same token again is served from the verified-token cache', source: ISSUE, token: { sign: 'rsa' }, sameTokenAsPrevious: false, expect: 200 },
  { name: '…and once more: a cache hit', source: ISSUE, sameTokenAsPrevious: true, expect: 200, cached: true },
  { name: '"bearer" in lower case (RFC 6750 schemes are case-insensitive)', source: RFC6750, token: { sign: 'rsa' }, send: 'bearer-lowercase', expect: 200 },
  // --- no token: authn passes, authz decides ---
  { name: 'no token on a route that needs a principal: 403', source: ISTIO_JWT, expect: 403 },
  { name: 'no token on an open route: 200', source: ISTIO_RA, path: '/open', expect: 200 },
  { name: 'Authorization: Basic is not a bearer token: ignored, authz decides', source: ENVOY, send: 'basic', expect: 403 },
  // --- algorithm attacks ---
  { name: 'alg none with an empty signature', source: AUTH0, token: { sign: 'none', alg: 'none' }, expect: 401, code: 'REMORA_ERR_JWT_ALG' },
  { name: 'alg None (case variant)', source: AUTH0, token: { sign: 'none', alg: 'None' }, expect: 401, code: 'REMORA_ERR_JWT_ALG' },
  { name: 'HS256 signed with the RSA public key as the HMAC secret', source: AUTH0, token: { sign: 'hs256-rsa-pub', alg: 'HS256', kid: 'rsa-1' }, expect: 401, code: 'REMORA_ERR_JWT_ALG' },
  { name: 'ES256 claimed for the RSA key (alg does not fit the key)', source: RFC8725 + '#section-2.1', token: { sign: 'ec', alg: 'ES256', kid: 'rsa-1' }, expect: 401, code: 'REMORA_ERR_JWT_ALG' },
  { name: 'RS512 claimed for a key whose JWK pins RS256', source: RFC8725 + '#section-3.1', token: { sign: 'rsa', alg: 'RS512' }, expect: 401, code: 'REMORA_ERR_JWT_ALG' },
  // --- header attacks ---
  { name: 'a crit header is refused', source: RFC7515 + '#section-4.1.11', token: { sign: 'rsa', header: { crit: ['exp'], exp: 1 } }, expect: 401, code: 'REMORA_ERR_JWT_HEADER' },
  { name: 'jku pointing at an attacker JWKS is never followed', source: RFC8725 + '#section-3.10', token: { sign: 'attacker', kid: 'evil', header: { jku: '<attacker>' } }, expect: 401, code: 'REMORA_ERR_JWT_UNKNOWN_KID' },
  { name: 'x5u pointing at an attacker is never followed', source: RFC8725 + '#section-3.10', token: { sign: 'attacker', kid: 'evil', header: { x5u: '<attacker>' } }, expect: 401, code: 'REMORA_ERR_JWT_UNKNOWN_KID' },
  { name: 'an embedded jwk (attacker key) with a published kid is not used', source: CVE_JWK, token: { sign: 'attacker', kid: 'rsa-1', header: { jwk: '<attacker-jwk>' } }, expect: 401, code: 'REMORA_ERR_JWT_SIGNATURE' },
  { name: 'a legit token that also carries jku: the configured keys decide, jku is ignored', source: RFC8725 + '#section-3.10', token: { sign: 'rsa', header: { jku: '<attacker>' } }, expect: 200 },
  { name: 'an unknown kid', source: ENVOY, token: { sign: 'attacker', kid: 'nope' }, expect: 401, code: 'REMORA_ERR_JWT_UNKNOWN_KID' },
  // --- claims ---
  { name: 'expired an hour ago', source: RFC7519 + '#section-4.1.4', token: { sign: 'rsa', claims: { exp: { $rel: -3600 } } }, expect: 401, code: 'REMORA_ERR_JWT_EXPIRED' },
  { name: 'nbf an hour ahead', source: RFC7519 + '#section-4.1.5', token: { sign: 'rsa', claims: { nbf: { $rel: 3600 } } }, expect: 401, code: 'REMORA_ERR_JWT_NOT_YET_VALID' },
  { name: 'exp 59 s ago: inside the 60 s leeway', source: ENVOY, token: { sign: 'rsa', claims: { exp: { $rel: -59 } } }, expect: 200 },
  { name: 'exp 61 s ago: outside the leeway', source: ENVOY, token: { sign: 'rsa', claims: { exp: { $rel: -61 } } }, expect: 401, code: 'REMORA_ERR_JWT_EXPIRED' },
  { name: 'nbf 59 s ahead: inside the leeway', source: ENVOY, token: { sign: 'rsa', claims: { nbf: { $rel: 59 } } }, expect: 200 },
  { name: 'nbf 61 s ahead: outside the leeway', source: ENVOY, token: { sign: 'rsa', claims: { nbf: { $rel: 61 } } }, expect: 401, code: 'REMORA_ERR_JWT_NOT_YET_VALID' },
  { name: 'an issuer no rule names', source: ISTIO_RA, token: { sign: 'rsa', claims: { iss: 'https://evil.test' } }, expect: 401, code: 'REMORA_ERR_JWT_ISSUER' },
  { name: 'no iss at all', source: RFC7519 + '#section-4.1.1', token: { sign: 'rsa', drop: ['iss'] }, expect: 401, code: 'REMORA_ERR_JWT_ISSUER' },
  { name: 'a token of an issuer configured for another location only', source: ISTIO_RA, token: { sign: 'ed', claims: { iss: INLINE_ISS } }, expect: 401, code: 'REMORA_ERR_JWT_ISSUER' },
  { name: 'aud for another service', source: RFC7519 + '#section-4.1.3', token: { sign: 'rsa', claims: { aud: 'payments' } }, expect: 401, code: 'REMORA_ERR_JWT_AUDIENCE' },
  { name: 'aud missing where audiences are configured', source: RFC7519 + '#section-4.1.3', token: { sign: 'rsa', drop: ['aud'] }, expect: 401, code: 'REMORA_ERR_JWT_AUDIENCE' },
  { name: 'aud as a list that contains ours', source: RFC7519 + '#section-4.1.3', token: { sign: 'rsa', claims: { aud: ['web', 'orders'] } }, expect: 200 },
  { name: 'sub missing', source: ISTIO_RA, token: { sign: 'rsa', drop: ['sub'] }, expect: 401, code: 'REMORA_ERR_JWT_CLAIMS' },
  // --- tampering and framing ---
  { name: 'tampered payload (sub changed, signature kept)', source: RFC7515, token: { sign: 'rsa', tamper: 'payload' }, expect: 401, code: 'REMORA_ERR_JWT_SIGNATURE' },
  { name: 'tampered signature', source: RFC7515, token: { sign: 'rsa', tamper: 'signature' }, expect: 401, code: 'REMORA_ERR_JWT_SIGNATURE' },
  { name: 'truncated signature', source: RFC7515, token: { sign: 'ec', tamper: 'truncate' }, expect: 401, code: 'REMORA_ERR_JWT_SIGNATURE' },
  { name: 'two segments only', source: RFC7515, token: { sign: 'rsa', tamper: 'drop-signature' }, expect: 401, code: 'REMORA_ERR_JWT_MALFORMED' },
  { name: 'a token over 8 KiB', source: ISSUE, token: { sign: 'rsa', tamper: 'pad-9k' }, expect: 401, code: 'REMORA_ERR_JWT_TOO_LARGE' },
  { name: 'two Authorization headers (valid + forged)', source: ISSUE, token: { sign: 'rsa' }, send: 'two-authorization', expect: 401, code: 'REMORA_ERR_JWT_DUPLICATE' },
  // --- locations ---
  { name: 'a valid token in a header no rule names is ignored (403 where a principal is needed)', source: ISTIO_RA, token: { sign: 'rsa' }, send: 'x-api-token', expect: 403 },
  { name: '…and passes through untouched on an open route', source: ISTIO_RA, token: { sign: 'rsa' }, send: 'x-api-token', path: '/open', expect: 200, appSees: { 'x-api-token': '<token>' } },
  { name: 'a token in ?access_token= (not configured) is ignored', source: ISTIO_RA, token: { sign: 'rsa' }, send: 'query-access_token', expect: 403 },
  // --- claims into authorization ---
  { name: 'a list claim: groups contains buyers', source: ISTIO_JWT, token: { sign: 'rsa', claims: { groups: ['dev', 'buyers'] } }, path: '/buyers', expect: 200 },
  { name: 'a list claim without buyers: 403', source: ISTIO_JWT, token: { sign: 'rsa', claims: { groups: ['dev'] } }, path: '/buyers', expect: 403 },
  { name: 'a string claim with a suffix pattern', source: ISTIO_COND, token: { sign: 'rsa', claims: { email: 'alice@example.com' } }, path: '/email', expect: 200 },
  { name: 'a nested claim (org.region = eu)', source: ISTIO_COND, token: { sign: 'rsa', claims: { org: { region: 'eu' } } }, path: '/nested', expect: 200, appSees: { 'x-jwt-region': 'eu' } },
  { name: 'a nested claim with another value: 403', source: ISTIO_COND, token: { sign: 'rsa', claims: { org: { region: 'us' } } }, path: '/nested', expect: 403 },
  { name: 'requestPrincipals "https://issuer.test/*": our issuer', source: ISTIO_JWT, token: { sign: 'rsa', claims: { sub: 'bob' } }, path: '/issuer', expect: 200 },
  { name: 'requestPrincipals "https://issuer.test/*": another issuer is 403', source: ISTIO_JWT, token: { sign: 'backup', claims: { iss: BACKUP_ISS } }, path: '/issuer', expect: 403 },
  { name: 'requestPrincipals "*/alice"', source: ISTIO_JWT, token: { sign: 'backup', claims: { iss: BACKUP_ISS } }, path: '/alice', expect: 200 },
  { name: 'requestPrincipals "*/alice": bob is 403', source: ISTIO_JWT, token: { sign: 'rsa', claims: { sub: 'bob' } }, path: '/alice', expect: 403 },
  // --- output headers can never be injected ---
  { name: 'a spoofed claim header is replaced by the verified claim', source: ISTIO_RA, token: { sign: 'rsa', claims: { groups: ['buyers'] } }, headers: { 'x-jwt-sub': 'admin', 'x-jwt-groups': 'admins' }, expect: 200, appSees: { 'x-jwt-sub': 'alice', 'x-jwt-groups': 'buyers' } },
  { name: 'a spoofed claim header without a token is stripped', source: ISTIO_RA, path: '/open', headers: { 'x-jwt-sub': 'admin', 'x-jwt-payload': 'e30' }, expect: 200, appSees: { 'x-jwt-sub': null, 'x-jwt-payload': null } },
  { name: 'a spoofed header next to an invalid token never reaches the app', source: ISTIO_RA, token: { sign: 'rsa', tamper: 'signature' }, headers: { 'x-jwt-sub': 'admin' }, expect: 401, code: 'REMORA_ERR_JWT_SIGNATURE' },
  // --- JWKS life cycle (order matters: each step changes the world for the rows after it) ---
  { name: 'JWKS endpoint never reachable, no key ever: fail closed', source: ISSUE, token: { sign: 'never', claims: { iss: NEVER_ISS } }, expect: 401, code: 'REMORA_ERR_JWT_JWKS_UNAVAILABLE' },
  { name: 'a key rotated in (new kid) is accepted without restart: one refetch', source: ISSUE, step: 'rotate', token: { sign: 'rsa2' }, expect: 200, jwksFetches: 1 },
  { name: 'another unknown kid inside the cooldown: no refetch, 401', source: ISSUE, token: { sign: 'attacker', kid: 'rsa-3' }, expect: 401, code: 'REMORA_ERR_JWT_UNKNOWN_KID', jwksFetches: 0 },
  { name: 'JWKS endpoint down, cached keys still verify', source: ISSUE, step: 'backup-down', token: { sign: 'backup', claims: { iss: BACKUP_ISS } }, expect: 200 },
  { name: 'a cached token does not outlive exp + leeway', source: ISSUE, token: { sign: 'rsa', claims: { exp: { $rel: 0 } } }, expect: 200 },
  { name: '…61 s later the same token is refused', source: ISSUE, step: 'advance-61s', sameTokenAsPrevious: true, expect: 401, code: 'REMORA_ERR_JWT_EXPIRED' },
]
