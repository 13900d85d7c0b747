import { hash as digest } from 'node:crypto'
import { createRequire } from 'node:module'
import type * as JoseErrors from 'jose/errors'
import type { jwtVerify as JoseJwtVerify } from 'jose/jwt/verify'
import { JWT_ALGORITHMS, type CompiledJwtRule, type RequestAuth } from '../policy/index.js'
import { FLAGS, PROXY_ERRORS, type ProxyErrorCode } from '../pipeline/index.js'
import { VerifiedTokenCache, type VerifiedToken } from './cache.js'
import type { JwksSource } from './jwks.js'
import type { KeySet, VerificationKey } from './keys.js'
import { extractTokens, indexLocations, locationLabel, type LocationEntry, type TokenInput } from './token.js'
import { RemoraError, isRemoraError } from '../errors/index.js'

export type JwtErrorCode = Extract<ProxyErrorCode, `REMORA_ERR_JWT_${string}`>

export const MAX_TOKEN_BYTES = 8192
export const DEFAULT_LEEWAY_SECONDS = 60
export const DEFAULT_TOKEN_CACHE_SIZE = 4096
/** A verified token without `exp` is re-verified at least this often. */
const NO_EXP_CACHE_MS = 60_000

export interface AuthenticatedToken {
  readonly rule: CompiledJwtRule
  readonly at: LocationEntry
  readonly verified: VerifiedToken
}

export type JwtOutcome =
  | { readonly result: 'missing' }
  | { readonly result: 'ok'; readonly auth: RequestAuth; readonly tokens: readonly AuthenticatedToken[]; readonly cached: boolean }
  | { readonly result: 'invalid'; readonly code: JwtErrorCode; readonly detail: string; readonly issuer: string | null }

export interface JwtAuthenticatorOptions {
  /** Clock skew allowed on exp and nbf, in seconds. Default 60 (Envoy's clock_skew_seconds). */
  readonly leewaySeconds?: number
  /** Verified tokens kept (LRU). Default 4096; 0 disables the cache. */
  readonly cacheSize?: number
  /** The key source of each rule (inline, fetched, or provided by the control plane). */
  readonly sourceFor: (rule: CompiledJwtRule) => JwksSource
}

export interface JwtAuthenticatorDeps {
  readonly clock: { now(): number }
  readonly logger?: { warn(obj: object, msg?: string): void }
}

export interface JwtAuthenticator {
  readonly rules: readonly CompiledJwtRule[]
  /** Lower-case names of every outputPayloadToHeader / outputClaimToHeaders header: stripped from every request. */
  readonly outputHeaders: readonly string[]
  readonly cache: VerifiedTokenCache
  authenticate(input: TokenInput): Promise<JwtOutcome>
}

const MISSING: Promise<JwtOutcome> = Promise.resolve({ result: 'missing' })

/** Why a token was refused (401 JW): a JWT code, a safe detail, the issuer when known. Never leaves the authenticator. */
class Invalid extends RemoraError<JwtErrorCode> {
  constructor(
    code: JwtErrorCode,
    readonly detail: string,
    readonly issuer: string | null = null,
  ) {
    super(code, 401, detail)
  }
}

/** A token refusal: a catalog code whose flag is JW (matched on the code, not the class). */
const isInvalid = (err: unknown): err is Invalid => isRemoraError(err) && PROXY_ERRORS[err.code as ProxyErrorCode]?.flag === FLAGS.JwtDenied

const SEGMENTS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const ACCEPTED = new Set<string>(JWT_ALGORITHMS)
/** Header parameters that change how a token would be verified; remora never follows any of them. */
const CRIT = 'crit'

interface Jose {
  readonly jwtVerify: typeof JoseJwtVerify
  readonly errors: typeof JoseErrors
}
let jose: Jose | null = null
/**
 * jose's JWT verification, loaded when the first authenticator is built (compile time: a workload
 * that a RequestAuthentication applies to). Synchronous (require of an ES module, Node ≥ 20.19),
 * so a broken install fails the compile (the snapshot is refused), never a request; a sidecar
 * without JWT rules never loads it. Only the two entry points used, not jose's whole index.
 */
function loadJose(): Jose {
  if (jose) return jose
  const req = createRequire(import.meta.url)
  return (jose = { jwtVerify: (req('jose/jwt/verify') as { jwtVerify: typeof JoseJwtVerify }).jwtVerify, errors: req('jose/errors') as typeof JoseErrors })
}

/** A value from a token, made safe and short for a log line or a response detail. */
function show(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v)
  const clean = s.replace(/[^\x20-\x7e]/g, '?')
  return JSON.stringify(clean.length > 80 ? `${clean.slice(0, 80)}…` : clean)
}

function decodeJson(segment: string, what: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    throw new Invalid('REMORA_ERR_JWT_MALFORMED', `${what} is not base64url JSON`)
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Invalid('REMORA_ERR_JWT_MALFORMED', `${what} is not a JSON object`)
  return v as Record<string, unknown>
}

function mapJoseError(joseErrors: typeof JoseErrors, err: unknown, rule: CompiledJwtRule): Invalid {
  const iss = rule.issuer
  if (err instanceof joseErrors.JWTExpired) return new Invalid('REMORA_ERR_JWT_EXPIRED', 'exp is past (leeway included)', iss)
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return new Invalid('REMORA_ERR_JWT_NOT_YET_VALID', 'nbf is in the future (leeway included)', iss)
    if (err.claim === 'aud') return new Invalid('REMORA_ERR_JWT_AUDIENCE', `aud does not include any of ${JSON.stringify(rule.audiences)}`, iss)
    if (err.claim === 'iss') return new Invalid('REMORA_ERR_JWT_ISSUER', 'iss does not match the rule', iss)
    return new Invalid('REMORA_ERR_JWT_CLAIMS', `claim ${show(err.claim)} is invalid`, iss)
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new Invalid('REMORA_ERR_JWT_SIGNATURE', 'signature does not verify', iss)
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new Invalid('REMORA_ERR_JWT_ALG', 'algorithm does not fit the key', iss)
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return new Invalid('REMORA_ERR_JWT_MALFORMED', 'not a valid JWS/JWT', iss)
  if (err instanceof joseErrors.JOSENotSupported) return new Invalid('REMORA_ERR_JWT_HEADER', 'unsupported header parameter', iss)
  return new Invalid('REMORA_ERR_JWT_SIGNATURE', 'verification failed', iss)
}

/**
 * Builds the JWT authenticator of one workload for one snapshot. Algorithms come from the keys;
 * `none`, HMAC and any algorithm that does not fit the key are refused; `crit` is refused;
 * `jku`, `x5u`, `x5c` and an embedded `jwk` are never read (only the rule's key source is).
 */
export function createJwtAuthenticator(rules: readonly CompiledJwtRule[], opts: JwtAuthenticatorOptions, deps: JwtAuthenticatorDeps): JwtAuthenticator {
  const leeway = opts.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS
  if (!Number.isFinite(leeway) || leeway < 0) throw new TypeError('createJwtAuthenticator: leewaySeconds must be ≥ 0')
  const cache = new VerifiedTokenCache(opts.cacheSize ?? DEFAULT_TOKEN_CACHE_SIZE)
  const sources = rules.map((r) => opts.sourceFor(r))
  const locations = indexLocations(rules)
  const headerNames = new Set<string>()
  for (const l of locations) {
    if (l.location.kind === 'header') headerNames.add(l.location.name)
    else if (l.location.kind === 'cookie') headerNames.add('cookie')
  }
  const outputHeaders = [
    ...new Set(rules.flatMap((r) => [...(r.outputPayloadToHeader ? [r.outputPayloadToHeader] : []), ...r.outputClaimToHeaders.map((o) => o.header)])),
  ]
  const unavailableLogged = new Map<number, number>()
  const { jwtVerify, errors: joseErrors } = loadJose()

  async function keysFor(ruleIndex: number, kid: string | undefined): Promise<{ set: KeySet; keys: VerificationKey[] }> {
    const src = sources[ruleIndex]!
    const rule = rules[ruleIndex]!
    let set = src.current() ?? (await src.refresh('no-keys'))
    if (set === null) {
      const now = deps.clock.now()
      if ((unavailableLogged.get(ruleIndex) ?? -Infinity) + 30_000 <= now) {
        unavailableLogged.set(ruleIndex, now)
        deps.logger?.warn({ event: 'jwt_jwks_unavailable', issuer: rule.issuer, jwks: src.description, rule: rule.id }, 'no JWKS key was ever obtained: tokens of this issuer are refused (401)')
      }
      throw new Invalid('REMORA_ERR_JWT_JWKS_UNAVAILABLE', `no key for issuer ${show(rule.issuer)} yet (${src.description})`, rule.issuer)
    }
    const pick = (s: KeySet) => (kid === undefined ? [...s.keys] : s.keys.filter((k) => k.kid === kid))
    let keys = pick(set)
    if (keys.length === 0 && kid !== undefined) {
      // Rotation: a new kid makes the source refetch (at most once per cooldown).
      set = (await src.refresh('unknown-kid')) ?? set
      keys = pick(set)
      if (keys.length === 0) throw new Invalid('REMORA_ERR_JWT_UNKNOWN_KID', `kid ${show(kid)} is not in the key set of ${show(rule.issuer)}`, rule.issuer)
    }
    return { set, keys }
  }

  async function verifyWith(token: string, ruleIndex: number, header: Record<string, unknown>, payloadSegment: string, now: number): Promise<VerifiedToken> {
    const rule = rules[ruleIndex]!
    const alg = header.alg as string
    const kid = header.kid as string | undefined
    const { set, keys } = await keysFor(ruleIndex, kid)
    const fit = keys.filter((k) => k.algorithms.has(alg))
    if (fit.length === 0) throw new Invalid('REMORA_ERR_JWT_ALG', `alg ${show(alg)} does not fit ${kid === undefined ? 'any key' : `key ${show(kid)}`} of ${show(rule.issuer)}`, rule.issuer)
    let last: Invalid | null = null
    for (const k of fit) {
      try {
        const { payload } = await jwtVerify(token, k.key, {
          algorithms: [alg as never],
          issuer: rule.issuer,
          ...(rule.audiences.length > 0 ? { audience: [...rule.audiences] } : {}),
          clockTolerance: leeway,
          currentDate: new Date(now),
        })
        const sub = payload.sub
        if (typeof sub !== 'string' || sub === '') throw new Invalid('REMORA_ERR_JWT_CLAIMS', 'sub is missing: the request principal is iss/sub', rule.issuer)
        const aud = payload.aud
        const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : []
        const azp = (payload as { azp?: unknown }).azp
        return {
          auth: { principal: `${rule.issuer}/${sub}`, audiences, presenter: typeof azp === 'string' ? azp : null, claims: payload as Record<string, unknown> },
          payloadSegment,
          rule: ruleIndex,
          keys: set,
          validUntil: typeof payload.exp === 'number' ? payload.exp + leeway : Number.POSITIVE_INFINITY,
          cachedUntil: typeof payload.exp === 'number' ? Number.POSITIVE_INFINITY : now + NO_EXP_CACHE_MS,
        }
      } catch (err) {
        last = isInvalid(err) ? err : mapJoseError(joseErrors, err, rule)
        if (last.code !== 'REMORA_ERR_JWT_SIGNATURE') throw last
      }
    }
    throw last!
  }

  /** A cache entry valid for this location and still backed by the current key set. */
  function lookup(h: string, at: LocationEntry, now: number): VerifiedToken | undefined {
    const hit = cache.get(h, now)
    return hit && at.rules.includes(hit.rule) && sources[hit.rule]!.current() === hit.keys ? hit : undefined
  }

  async function verifyToken(token: string, at: LocationEntry, now: number): Promise<{ v: VerifiedToken; cached: boolean }> {
    if (token.length > MAX_TOKEN_BYTES) throw new Invalid('REMORA_ERR_JWT_TOO_LARGE', `token of ${token.length} bytes (limit ${MAX_TOKEN_BYTES})`)
    if (!SEGMENTS.test(token)) throw new Invalid('REMORA_ERR_JWT_MALFORMED', 'not three base64url segments')
    const h = digest('sha256', token, 'base64url')
    const hit = lookup(h, at, now)
    if (hit) return { v: hit, cached: true }
    const dot1 = token.indexOf('.')
    const dot2 = token.indexOf('.', dot1 + 1)
    const header = decodeJson(token.slice(0, dot1), 'header')
    if (CRIT in header) throw new Invalid('REMORA_ERR_JWT_HEADER', 'a crit header parameter is never accepted')
    const alg = header.alg
    if (typeof alg !== 'string') throw new Invalid('REMORA_ERR_JWT_HEADER', 'alg is missing')
    if (!ACCEPTED.has(alg)) throw new Invalid('REMORA_ERR_JWT_ALG', `alg ${show(alg)} is never accepted (none and HMAC included)`)
    if (header.kid !== undefined && typeof header.kid !== 'string') throw new Invalid('REMORA_ERR_JWT_HEADER', 'kid is not a string')
    const payloadSegment = token.slice(dot1 + 1, dot2)
    const payload = decodeJson(payloadSegment, 'payload')
    const iss = payload.iss
    if (typeof iss !== 'string') throw new Invalid('REMORA_ERR_JWT_ISSUER', 'iss is missing')
    const candidates = at.rules.filter((i) => rules[i]!.issuer === iss)
    if (candidates.length === 0) throw new Invalid('REMORA_ERR_JWT_ISSUER', `issuer ${show(iss)} is not configured for ${locationLabel(at.location)}`, null)
    let err: Invalid | null = null
    for (const i of candidates) {
      try {
        const v = await verifyWith(token, i, header, payloadSegment, now)
        cache.set(h, v)
        return { v, cached: false }
      } catch (e) {
        err = isInvalid(e) ? e : new Invalid('REMORA_ERR_JWT_SIGNATURE', 'verification failed', iss)
      }
    }
    throw err!
  }

  // Synchronous up to here for the common cases (no token, one cached token): no verification,
  // no extra microtask turns on the hot path.
  function authenticate(input: TokenInput): Promise<JwtOutcome> {
    const ex = extractTokens(locations, headerNames, input)
    if (ex.kind === 'duplicate') return Promise.resolve({ result: 'invalid', code: 'REMORA_ERR_JWT_DUPLICATE', detail: `${ex.where} appears more than once`, issuer: null })
    if (ex.found.length === 0) return MISSING
    const now = deps.clock.now()
    if (ex.found.length === 1) {
      const f = ex.found[0]!
      const t = f.token
      if (t.length <= MAX_TOKEN_BYTES) {
        const hit = lookup(digest('sha256', t, 'base64url'), f.at, now)
        if (hit) return Promise.resolve({ result: 'ok', auth: hit.auth, tokens: [{ rule: rules[hit.rule]!, at: f.at, verified: hit }], cached: true })
      }
    }
    return verifyAll(ex.found, now)
  }

  async function verifyAll(found: readonly { token: string; at: LocationEntry }[], now: number): Promise<JwtOutcome> {
    const ex = { found }
    const tokens: AuthenticatedToken[] = []
    let cachedAll = true
    for (const f of ex.found) {
      try {
        const { v, cached } = await verifyToken(f.token, f.at, now)
        cachedAll &&= cached
        tokens.push({ rule: rules[v.rule]!, at: f.at, verified: v })
      } catch (e) {
        if (isInvalid(e)) return { result: 'invalid', code: e.code, detail: `${locationLabel(f.at.location)}: ${e.detail}`, issuer: e.issuer }
        throw e
      }
    }
    return { result: 'ok', auth: tokens[0]!.verified.auth, tokens, cached: cachedAll }
  }

  return { rules, outputHeaders, cache, authenticate }
}
