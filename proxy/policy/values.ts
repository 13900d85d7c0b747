// Value syntax shared by the validator and the compiler, so that what validates is exactly what
// compiles: Istio's string patterns, principals, path templates, condition keys, Kubernetes names.
import type { PolicyIssueCode } from './errors.js'

// ---------------------------------------------------------------------------------------------
// Istio string patterns: "*" (presence: any non-empty value), "prefix*", "*suffix", "exact".

export type Pattern =
  | { readonly kind: 'presence' }
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'suffix'; readonly value: string }

/** Istio's StringMatcher: the first matching form wins, in this order (pilot/pkg/security/authz/matcher/string.go). */
export function parsePattern(v: string): Pattern {
  if (v === '*') return { kind: 'presence' }
  if (v.startsWith('*')) return { kind: 'suffix', value: v.slice(1) }
  if (v.endsWith('*')) return { kind: 'prefix', value: v.slice(0, -1) }
  return { kind: 'exact', value: v }
}

/** A `*` is only meaningful as the whole value, the first or the last character, and only once. */
export function wildcardProblem(v: string): string | null {
  const count = v.split('*').length - 1
  if (count === 0 || v === '*') return null
  if (count > 1) return `"${v}" has more than one "*": a value may be exact, "prefix*", "*suffix" or "*"`
  if (!v.startsWith('*') && !v.endsWith('*')) return `"${v}" has a "*" in the middle: a value may be exact, "prefix*", "*suffix" or "*"`
  return null
}

// ---------------------------------------------------------------------------------------------
// Principals. Istio writes them without the scheme (`cluster.local/ns/x/sa/y`) and matches
// `spiffe://` + value; remora also accepts the full SPIFFE ID and normalizes it.

export const SPIFFE_PREFIX = 'spiffe://'
const TRUST_DOMAIN = /^[a-z0-9._-]+$/
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/
const PRINCIPAL_CHARS = /^[A-Za-z0-9._\-/]*$/

export function stripSpiffeScheme(v: string): string {
  return v.startsWith(SPIFFE_PREFIX) ? v.slice(SPIFFE_PREFIX.length) : v
}

/** The principal as a pattern over the full SPIFFE ID (`spiffe://…`), Istio's StringMatcherWithPrefix. */
export function principalPattern(v: string): Pattern {
  const p = parsePattern(stripSpiffeScheme(v))
  switch (p.kind) {
    case 'presence':
    case 'suffix':
      return p
    case 'prefix':
      return { kind: 'prefix', value: SPIFFE_PREFIX + p.value }
    case 'exact':
      return { kind: 'exact', value: SPIFFE_PREFIX + p.value }
  }
}

/** Checks an unprefixed SPIFFE ID `td/path…`. */
function spiffeProblem(id: string): string | null {
  const slash = id.indexOf('/')
  const td = slash === -1 ? id : id.slice(0, slash)
  if (!td || !TRUST_DOMAIN.test(td) || td.length > 255) return `trust domain "${td}" is not valid (lower-case letters, digits, ".", "-", "_")`
  if (slash === -1) return null
  const segs = id.slice(slash + 1).split('/')
  for (const s of segs) {
    if (s === '' || s === '.' || s === '..') return 'the path has an empty, "." or ".." segment'
    if (!PATH_SEGMENT.test(s)) return `path segment "${s}" has characters outside [A-Za-z0-9._-]`
  }
  return null
}

export function principalProblem(v: string): string | null {
  const w = wildcardProblem(v)
  if (w) return w
  const body = stripSpiffeScheme(v)
  if (body === '') return 'empty principal'
  const p = parsePattern(body)
  if (p.kind === 'presence') return null
  if (p.kind === 'exact') {
    const e = spiffeProblem(p.value)
    return e ? `"${v}" is not a SPIFFE ID: ${e}` : null
  }
  if (!PRINCIPAL_CHARS.test(p.value)) return `"${v}" has characters a SPIFFE ID cannot contain`
  if (p.kind === 'prefix') {
    // the part before the first "/" is (a prefix of) the trust domain
    const slash = p.value.indexOf('/')
    const td = slash === -1 ? p.value : p.value.slice(0, slash)
    if (!/^[a-z0-9._-]*$/.test(td)) return `"${v}": trust domain "${td}" is not valid (lower-case letters, digits, ".", "-", "_")`
    if (slash !== -1 && p.value.slice(slash).includes('//')) return `"${v}" has an empty path segment`
  } else if (p.value.includes('//')) return `"${v}" has an empty path segment`
  return null
}

/** The trust domain a principal value pins, or null when a pattern leaves it open. */
export function principalTrustDomain(v: string): string | null {
  const p = parsePattern(stripSpiffeScheme(v))
  if (p.kind === 'exact') {
    const slash = p.value.indexOf('/')
    return slash === -1 ? p.value : p.value.slice(0, slash)
  }
  if (p.kind === 'prefix') {
    const slash = p.value.indexOf('/')
    return slash === -1 ? null : p.value.slice(0, slash)
  }
  return null
}

// ---------------------------------------------------------------------------------------------
// Kubernetes names and labels

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s)
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s)
}

export function labelKeyProblem(k: string): string | null {
  if (k === '') return 'empty label key'
  if (k.includes('*')) return `wildcard is not supported in selector key "${k}"`
  const slash = k.indexOf('/')
  const prefix = slash === -1 ? null : k.slice(0, slash)
  const name = slash === -1 ? k : k.slice(slash + 1)
  if (prefix !== null && !isDns1123Subdomain(prefix)) return `label key prefix "${prefix}" is not a DNS subdomain`
  if (name.length > 63 || !LABEL_NAME.test(name)) return `label key "${k}" is not a valid label name`
  return null
}

export function labelValueProblem(v: string): string | null {
  if (v.includes('*')) return `wildcard is not supported in selector value "${v}"`
  if (v === '') return null
  if (v.length > 63 || !LABEL_NAME.test(v)) return `label value "${v}" is not valid (63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)`
  return null
}

/** Namespace patterns: a namespace name, or a `*` pattern of one. */
export function namespaceProblem(v: string): string | null {
  const w = wildcardProblem(v)
  if (w) return w
  const p = parsePattern(v)
  if (p.kind === 'presence') return null
  if (p.kind === 'exact') return isDns1123Label(p.value) ? null : `"${v}" is not a valid namespace name`
  return /^[a-z0-9-]+$/.test(p.value) ? null : `"${v}" is not a valid namespace pattern`
}

// ---------------------------------------------------------------------------------------------
// Ports

export function parsePort(v: string, min = 0): number | null {
  if (!/^[0-9]{1,5}$/.test(v)) return null
  const n = Number(v)
  return n >= min && n <= 65535 ? n : null
}

// ---------------------------------------------------------------------------------------------
// Path templates ({*} one segment, {**} zero or more segments), Envoy's uri_template matcher.

export const MATCH_ONE = '{*}'
export const MATCH_ANY = '{**}'

export function containsPathTemplate(v: string): boolean {
  return v.includes(MATCH_ONE) || v.includes(MATCH_ANY)
}

// Istio's literal check (pkg/config/security): RFC 3986 pchar; Envoy's regex classes below.
const TEMPLATE_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/
const ENVOY_PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@"

/** Istio's CheckValidPathTemplate plus Envoy's own parse rules, as a message or null. */
export function pathTemplateProblem(v: string): string | null {
  if (!v.startsWith('/')) return 'a path template must start with "/"'
  if (v.includes('*') && v.replaceAll(MATCH_ANY, '').replaceAll(MATCH_ONE, '').includes('*')) {
    return 'a path template cannot be mixed with "*" prefix/suffix matching'
  }
  const segs = v.slice(1).split('/')
  let sawAny = false
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!
    if (s === MATCH_ONE || s === MATCH_ANY) {
      if (sawAny) return '{**} must be the last operator in a path template'
      if (s === MATCH_ANY) sawAny = true
      continue
    }
    if (s.includes('{') || s.includes('}')) {
      return `segment "${s}" uses braces beyond {*} or {**} (named variables and operators inside a segment are not supported)`
    }
    if (s === '' && i === segs.length - 1) continue // trailing "/"
    if (!TEMPLATE_LITERAL.test(s)) return `segment "${s}" is not a valid literal (empty, or characters outside RFC 3986 pchar)`
  }
  return null
}

/** Compile a valid template to Envoy's regex: "/" + segments joined by "/". */
export function compilePathTemplate(v: string): RegExp {
  const segs = v.slice(1).split('/')
  const parts = segs.map((s) => {
    if (s === MATCH_ONE) return `[${ENVOY_PCHAR}]+`
    if (s === MATCH_ANY) return `[${ENVOY_PCHAR}/]*`
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  })
  return new RegExp(`^/${parts.join('/')}$`)
}

/** Braces in a non-template path: Istio rejects `{` / `}` beyond a supported template. */
export function bracesProblem(v: string): string | null {
  const stripped = v.replaceAll(MATCH_ANY, '').replaceAll(MATCH_ONE, '')
  return stripped.includes('{') || stripped.includes('}') ? `"${v}" has "{" or "}" that is not a {*} or {**} template` : null
}

// ---------------------------------------------------------------------------------------------
// Condition keys (rules[].when[].key)

export type WhenKey =
  | { readonly kind: 'request.headers'; readonly name: string }
  | { readonly kind: 'request.auth.claims'; readonly claims: readonly string[] }
  | {
      readonly kind:
        | 'source.ip'
        | 'remote.ip'
        | 'source.namespace'
        | 'source.principal'
        | 'request.auth.principal'
        | 'request.auth.audiences'
        | 'request.auth.presenter'
        | 'destination.ip'
        | 'destination.port'
        | 'connection.sni'
    }

export type WhenKeyResult = { ok: true; key: WhenKey } | { ok: false; code: PolicyIssueCode; message: string }

const SIMPLE_KEYS = new Set([
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
])

const UNSUPPORTED_KEYS: Record<string, string> = {
  'source.serviceAccount': 'source.serviceAccount is not supported by remora yet; use source.principal',
  'source.trustDomain': 'source.trustDomain is not supported by remora yet; use source.principal with a "td/*" pattern',
  'destination.namespace': 'destination.namespace is replaced by metadata.namespace (as in Istio)',
  'destination.name': 'destination.name is a deprecated v1alpha1 attribute (as in Istio)',
  'destination.user': 'destination.user is a deprecated v1alpha1 attribute (as in Istio)',
}

/** Istio's extractNameInNestedBrackets: `[a][b]` → [a, b]; anything else is one name in `[..]`. */
function nestedBrackets(s: string): string[] | null {
  const out: string[] = []
  let i = 0
  while (i < s.length) {
    if (s[i] !== '[') return null
    const end = s.indexOf(']', i + 1)
    if (end === -1) return null
    const name = s.slice(i + 1, end)
    if (name === '' || name.includes('[')) return null
    out.push(name)
    i = end + 1
  }
  return out.length ? out : null
}

export function parseWhenKey(key: string): WhenKeyResult {
  if (SIMPLE_KEYS.has(key)) return { ok: true, key: { kind: key as Exclude<WhenKey['kind'], 'request.headers' | 'request.auth.claims'> } }
  const unsupported = UNSUPPORTED_KEYS[key]
  if (unsupported) return { ok: false, code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', message: unsupported }
  if (key.startsWith('destination.labels')) {
    return { ok: false, code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', message: 'destination.labels is replaced by the workload selector (as in Istio)' }
  }
  if (key.startsWith('experimental.') || key.startsWith('request.experimental.')) {
    return { ok: false, code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', message: `experimental key "${key}" is not supported` }
  }
  if (key.startsWith('request.headers')) {
    const rest = key.slice('request.headers'.length)
    if (rest.length > 2 && rest.startsWith('[') && rest.endsWith(']') && rest.indexOf(']') === rest.length - 1) {
      return { ok: true, key: { kind: 'request.headers', name: rest.slice(1, -1).toLowerCase() } }
    }
    return { ok: false, code: 'REMORA_ERR_POLICY_BAD_WHEN_KEY', message: `"${key}" should have the form request.headers[<name>]` }
  }
  if (key.startsWith('request.auth.claims')) {
    const claims = nestedBrackets(key.slice('request.auth.claims'.length))
    if (claims) return { ok: true, key: { kind: 'request.auth.claims', claims } }
    return { ok: false, code: 'REMORA_ERR_POLICY_BAD_WHEN_KEY', message: `"${key}" should have the form request.auth.claims[<name>] or claims[<a>][<b>]` }
  }
  return { ok: false, code: 'REMORA_ERR_POLICY_WHEN_KEY_UNKNOWN', message: `unknown condition key "${key}"` }
}

/** Keys whose values only a validated JWT can satisfy. */
export function isRequestAuthKey(k: WhenKey): boolean {
  return k.kind.startsWith('request.auth.')
}

// ---------------------------------------------------------------------------------------------
// Dry run: Istio reads the annotation with Go's strconv.ParseBool.

const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True'])
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False'])

export function parseGoBool(v: string): boolean | null {
  if (GO_TRUE.has(v)) return true
  if (GO_FALSE.has(v)) return false
  return null
}

// ---------------------------------------------------------------------------------------------
// Formatting JSON paths: spec.rules[0].from[0].source.principals[1]

export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else {
      const s = String(p)
      out += /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`
    }
  }
  return out
}
