// RequestAuthentication (Istio's JWT authentication policy): its schema, the checks on issuers,
// JWKS sources, token locations and output headers, and compilation into per-workload jwtRules.
// Pure like the rest of the leaf: it never fetches a JWKS, never imports a key and reads no clock;
// proxy/authn does that with what this module hands it.
import { z } from 'zod'
import { parseIpv4 } from './ip.js'
import { DEFAULT_ROOT_NAMESPACE, type ApiVersion, type ObjectMeta, type PolicyDocument, type WorkloadSelector } from './types.js'

// ---------------------------------------------------------------------------------------------
// Documents

export interface JwtHeaderLocation {
  name: string
  prefix?: string
}

export interface ClaimToHeader {
  header: string
  claim: string
}

export interface JwtRule {
  issuer: string
  audiences?: string[]
  jwksUri?: string
  /** A JSON Web Key Set, inline, as a JSON string (Istio's `jwks`). */
  jwks?: string
  fromHeaders?: JwtHeaderLocation[]
  fromParams?: string[]
  fromCookies?: string[]
  forwardOriginalToken?: boolean
  outputPayloadToHeader?: string
  outputClaimToHeaders?: ClaimToHeader[]
  /** JWKS fetch timeout (`5s`, `500ms`); default 5 s. */
  timeout?: string
}

export interface RequestAuthenticationSpec {
  selector?: WorkloadSelector
  jwtRules?: JwtRule[]
}

export interface RequestAuthentication {
  apiVersion: ApiVersion
  kind: 'RequestAuthentication'
  metadata: ObjectMeta
  spec: RequestAuthenticationSpec
}

/** JWT algorithms remora verifies: asymmetric only. `none` and HMAC never verify anything. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number]

const RSA_ALGS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const EC_ALG: Readonly<Record<string, JwtAlgorithm>> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }

/** A public JWK as it stands in a key set; only the members remora reads are typed. */
export interface PublicJwk {
  kty: string
  kid?: string
  alg?: string
  use?: string
  key_ops?: string[]
  crv?: string
  n?: string
  e?: string
  x?: string
  y?: string
  [k: string]: unknown
}

/**
 * The algorithms a key may verify, pinned from the key and never from a token: its `alg` when it
 * has one, else every asymmetric algorithm of its type (RSA: RS256..PS512; EC: by curve; OKP Ed25519:
 * EdDSA). Empty when the key cannot verify a JWS (symmetric, encryption-only, unknown type).
 */
export function algorithmsForJwk(jwk: PublicJwk): readonly JwtAlgorithm[] {
  if (jwk.use !== undefined && jwk.use !== 'sig') return []
  if (jwk.key_ops !== undefined && !jwk.key_ops.includes('verify')) return []
  let fit: readonly JwtAlgorithm[]
  if (jwk.kty === 'RSA') fit = RSA_ALGS
  else if (jwk.kty === 'EC') fit = jwk.crv && EC_ALG[jwk.crv] ? [EC_ALG[jwk.crv]!] : []
  else if (jwk.kty === 'OKP') fit = jwk.crv === 'Ed25519' ? ['EdDSA', 'Ed25519'] : []
  else fit = []
  if (jwk.alg === undefined) return fit
  return fit.includes(jwk.alg as JwtAlgorithm) ? [jwk.alg as JwtAlgorithm] : []
}

const B64URL = /^[A-Za-z0-9_-]+$/
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

/**
 * Why a JSON text is not a usable public key set, or null. Messages name key indexes and `kid`s,
 * never key material.
 */
export function jwksProblem(text: string): string | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return 'is not valid JSON'
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'must be a JSON object {"keys": [...]}'
  const keys = (parsed as { keys?: unknown }).keys
  if (!Array.isArray(keys) || keys.length === 0) return 'must have a non-empty "keys" list'
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as PublicJwk | null
    const where = `keys[${i}]${k && typeof k === 'object' && typeof k.kid === 'string' ? ` (kid "${k.kid}")` : ''}`
    if (k === null || typeof k !== 'object' || Array.isArray(k)) return `${where} is not an object`
    if (k.kty === 'oct') return `${where} is a symmetric (HMAC) key: only public keys verify tokens`
    if (PRIVATE_MEMBERS.some((m) => m in k)) return `${where} contains private key material: publish only public keys`
    if (k.kid !== undefined && typeof k.kid !== 'string') return `${where}: kid must be a string`
    if (k.alg !== undefined && typeof k.alg !== 'string') return `${where}: alg must be a string`
    const need = k.kty === 'RSA' ? ['n', 'e'] : k.kty === 'EC' ? ['x', 'y'] : k.kty === 'OKP' ? ['x'] : null
    if (need === null) return `${where}: kty ${JSON.stringify(k.kty)} is not RSA, EC or OKP`
    for (const m of need) if (typeof k[m] !== 'string' || !B64URL.test(k[m] as string)) return `${where}: "${m}" must be a base64url string`
    if (algorithmsForJwk(k).length === 0) {
      return `${where}: cannot verify signatures (alg ${JSON.stringify(k.alg ?? null)}, kty ${k.kty}, crv ${JSON.stringify(k.crv ?? null)}, use ${JSON.stringify(k.use ?? null)}; accepted: ${JWT_ALGORITHMS.join(', ')})`
    }
  }
  return null
}

function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true
  const v4 = parseIpv4(hostname)
  return v4 !== null && v4 >>> 24 === 127
}

/** Why a jwksUri is refused, or null: https only, or http to a loopback address; no credentials. */
export function jwksUriProblem(v: string): string | null {
  let u: URL
  try {
    u = new URL(v)
  } catch {
    return `"${v}" is not an absolute URL`
  }
  if (u.username || u.password) return 'must not carry credentials (user:password@)'
  if (u.protocol === 'https:') return null
  if (u.protocol === 'http:') return isLoopbackHost(u.hostname) ? null : `http:// is only accepted for a loopback host (127.0.0.0/8, ::1, localhost); use https://`
  return `scheme "${u.protocol}" is not https:`
}

const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers the sidecar owns or that change the message framing: never a token or output location. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'x-forwarded-client-cert',
  'x-forwarded-proto',
  'x-request-id',
  'traceparent',
  'tracestate',
])

export function headerNameProblem(v: string, output: boolean): string | null {
  if (!TOKEN_CHARS.test(v)) return `"${v}" is not a valid HTTP header name`
  const l = v.toLowerCase()
  // x-remora-* and x-envoy-* are the sidecar's namespace, stripped at ingress: a token there never arrives, an output there would be hidden from policies.
  if (RESERVED_HEADERS.has(l) || l.startsWith('x-remora-') || l.startsWith('x-envoy-')) return `"${v}" is a header the sidecar owns`
  if (output && (l === 'authorization' || l === 'cookie')) return `"${v}" cannot receive JWT output`
  return null
}

const DURATION = /^(\d+)(ms|s)$/
export function parseJwtDuration(v: string): number | null {
  const m = DURATION.exec(v)
  if (!m) return null
  const ms = Number(m[1]) * (m[2] === 's' ? 1000 : 1)
  return ms > 0 && ms <= 60_000 ? ms : null
}

// ---------------------------------------------------------------------------------------------
// Schema (validate.ts dispatches to it; issue codes travel in params.code as there)

type Code =
  | 'REMORA_ERR_POLICY_JWKS_URI'
  | 'REMORA_ERR_POLICY_JWKS'
  | 'REMORA_ERR_POLICY_JWKS_SOURCE'
  | 'REMORA_ERR_POLICY_BAD_HEADER_NAME'
  | 'REMORA_ERR_POLICY_BAD_DURATION'
  | 'REMORA_ERR_POLICY_UNSUPPORTED_FIELD'
  | 'REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED'

function refine(check: (v: string) => readonly [Code, string] | null) {
  return (v: string, ctx: z.RefinementCtx) => {
    const r = check(v)
    if (r) ctx.addIssue({ code: 'custom', message: r[1], params: { code: r[0] } })
  }
}

function unsupportedField(code: Code, message: string) {
  return z
    .unknown()
    .superRefine((_v, ctx) => ctx.addIssue({ code: 'custom', message, params: { code } }))
    .optional()
}

const headerName = (output: boolean) =>
  z
    .string()
    .min(1)
    .superRefine(refine((v) => {
      const p = headerNameProblem(v, output)
      return p ? ['REMORA_ERR_POLICY_BAD_HEADER_NAME', p] : null
    }))

const jwtRuleSchema = z
  .strictObject({
    issuer: z.string().min(1),
    audiences: z.array(z.string().min(1)).min(1).optional(),
    jwksUri: z
      .string()
      .min(1)
      .superRefine(refine((v) => {
        const p = jwksUriProblem(v)
        return p ? ['REMORA_ERR_POLICY_JWKS_URI', `jwksUri ${p}`] : null
      }))
      .optional(),
    jwks: z
      .string()
      .min(1)
      .superRefine(refine((v) => {
        const p = jwksProblem(v)
        return p ? ['REMORA_ERR_POLICY_JWKS', `jwks ${p}`] : null
      }))
      .optional(),
    fromHeaders: z.array(z.strictObject({ name: headerName(false), prefix: z.string().optional() })).min(1).optional(),
    fromParams: z.array(z.string().min(1)).min(1).optional(),
    fromCookies: z
      .array(
        z
          .string()
          .min(1)
          .superRefine(refine((v) => (TOKEN_CHARS.test(v) ? null : ['REMORA_ERR_POLICY_BAD_HEADER_NAME', `"${v}" is not a valid cookie name`]))),
      )
      .min(1)
      .optional(),
    forwardOriginalToken: z.boolean().optional(),
    outputPayloadToHeader: headerName(true).optional(),
    outputClaimToHeaders: z.array(z.strictObject({ header: headerName(true), claim: z.string().min(1) })).min(1).optional(),
    timeout: z
      .string()
      .superRefine(refine((v) => (parseJwtDuration(v) === null ? ['REMORA_ERR_POLICY_BAD_DURATION', `timeout "${v}" is not a duration in 1ms..60s ("5s", "500ms")`] : null)))
      .optional(),
  })
  .superRefine((r, ctx) => {
    const add = (message: string, path: string) => ctx.addIssue({ code: 'custom', message, path: [path], params: { code: 'REMORA_ERR_POLICY_JWKS_SOURCE' } })
    if (r.jwks !== undefined && r.jwksUri !== undefined) add('set one of jwks and jwksUri, not both (which one would win is not obvious)', 'jwks')
    if (r.jwks === undefined && r.jwksUri === undefined) {
      add('jwksUri or jwks is required (OpenID Connect discovery from the issuer is not supported)', 'jwksUri')
    }
  })

const targetRefMessage = 'targetRef/targetRefs (Gateway API policy attachment) is not supported by remora; use selector.matchLabels'

/** The spec schema; `selector` is validate.ts's, so that selectors are checked one way everywhere. */
export function createRequestAuthnSpecSchema(selector: z.ZodType) {
  return z.strictObject({
    selector: selector.optional(),
    jwtRules: z.array(jwtRuleSchema).min(1).optional(),
    targetRef: unsupportedField('REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', targetRefMessage),
    targetRefs: unsupportedField('REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', targetRefMessage),
  })
}

/** Field names of RequestAuthentication, for "did you mean" suggestions. */
export const REQUEST_AUTHN_FIELDS = [
  'jwtRules',
  'issuer',
  'audiences',
  'jwksUri',
  'jwks',
  'fromHeaders',
  'prefix',
  'fromParams',
  'fromCookies',
  'forwardOriginalToken',
  'outputPayloadToHeader',
  'outputClaimToHeaders',
  'header',
  'claim',
  'timeout',
] as const

// ---------------------------------------------------------------------------------------------
// Compilation

export type JwtLocation =
  | { readonly kind: 'header'; readonly name: string; readonly prefix: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string }

/** The default when a rule names no location: `Authorization: Bearer <token>` only. */
export const DEFAULT_JWT_LOCATION: JwtLocation = { kind: 'header', name: 'authorization', prefix: 'Bearer ' }
export const DEFAULT_JWKS_TIMEOUT_MS = 5000

export interface CompiledJwtRule {
  /** `ns/name jwtRules[i]`: names the rule in logs and denials. */
  readonly id: string
  readonly policy: string
  readonly index: number
  readonly issuer: string
  /** Empty: the token's `aud` is not checked. */
  readonly audiences: readonly string[]
  readonly jwksUri: string | null
  /** The inline key set (parsed, validated), or null when fetched from jwksUri. */
  readonly jwks: { readonly keys: readonly PublicJwk[] } | null
  readonly locations: readonly JwtLocation[]
  readonly forwardOriginalToken: boolean
  readonly outputPayloadToHeader: string | null
  /** Header (lower case) ← claim path (`a.b` split on `.`). */
  readonly outputClaimToHeaders: readonly { readonly header: string; readonly claim: readonly string[] }[]
  readonly timeoutMs: number
}

interface CompiledRequestAuthn {
  readonly id: string
  readonly namespace: string
  readonly selector: Readonly<Record<string, string>> | null
  readonly rules: readonly CompiledJwtRule[]
}

export interface CompiledRequestAuthnSet {
  readonly rootNamespace: string
  /** Sorted by namespace, then name. */
  readonly policies: readonly CompiledRequestAuthn[]
}

function compileRule(r: JwtRule, policy: string, index: number): CompiledJwtRule {
  const locations: JwtLocation[] = []
  for (const h of r.fromHeaders ?? []) locations.push({ kind: 'header', name: h.name.toLowerCase(), prefix: h.prefix ?? '' })
  for (const p of r.fromParams ?? []) locations.push({ kind: 'param', name: p })
  for (const c of r.fromCookies ?? []) locations.push({ kind: 'cookie', name: c })
  if (locations.length === 0) locations.push(DEFAULT_JWT_LOCATION)
  return {
    id: `${policy} jwtRules[${index}]`,
    policy,
    index,
    issuer: r.issuer,
    audiences: r.audiences ?? [],
    jwksUri: r.jwks !== undefined ? null : (r.jwksUri ?? null),
    jwks: r.jwks !== undefined ? (JSON.parse(r.jwks) as { keys: PublicJwk[] }) : null,
    locations,
    forwardOriginalToken: r.forwardOriginalToken ?? false,
    outputPayloadToHeader: r.outputPayloadToHeader?.toLowerCase() ?? null,
    outputClaimToHeaders: (r.outputClaimToHeaders ?? []).map((o) => ({ header: o.header.toLowerCase(), claim: o.claim.split('.') })),
    timeoutMs: r.timeout !== undefined ? parseJwtDuration(r.timeout)! : DEFAULT_JWKS_TIMEOUT_MS,
  }
}

/** Compile the RequestAuthentications among validated documents (other kinds are skipped). */
export function compileRequestAuthn(docs: readonly PolicyDocument[], opts: { readonly rootNamespace?: string } = {}): CompiledRequestAuthnSet {
  const policies: CompiledRequestAuthn[] = []
  for (const d of docs) {
    if (d.kind !== 'RequestAuthentication') continue
    const id = `${d.metadata.namespace}/${d.metadata.name}`
    const labels = d.spec.selector?.matchLabels
    policies.push({
      id,
      namespace: d.metadata.namespace,
      selector: labels && Object.keys(labels).length > 0 ? labels : null,
      rules: (d.spec.jwtRules ?? []).map((r, i) => compileRule(r, id, i)),
    })
  }
  policies.sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { rootNamespace: opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE, policies }
}

export interface WorkloadJwtRules {
  /** `ns/name` of every RequestAuthentication that applies (some may have no rules). */
  readonly policies: readonly string[]
  /** Every jwtRule of those policies, in policy order: Istio merges them. */
  readonly rules: readonly CompiledJwtRule[]
}

/** The jwtRules that apply to one workload: its namespace's and the root namespace's, by selector. */
export function jwtRulesForWorkload(set: CompiledRequestAuthnSet, workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> }): WorkloadJwtRules {
  const applied = set.policies.filter((p) => {
    if (p.namespace !== workload.namespace && p.namespace !== set.rootNamespace) return false
    if (p.selector === null) return true
    for (const k in p.selector) if (workload.labels[k] !== p.selector[k]) return false
    return true
  })
  return { policies: applied.map((p) => p.id), rules: applied.flatMap((p) => p.rules) }
}
