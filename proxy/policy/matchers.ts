// Precompiled matchers: every policy value is turned into sets, prefix/suffix arrays, template
// regexes and integer CIDRs once, at compile time. A predicate reads the request through an
// EvalContext that parses each request-side value (IPs, lower-cased host) at most once.
import { cidrContains, parseCidr, parseRequestIp, type Cidr, type IpAddr } from './ip.js'
import type { RequestAuth, RequestFacts, Rule } from './types.js'
import {
  compilePathTemplate,
  containsPathTemplate,
  parsePattern,
  parsePort,
  parseWhenKey,
  principalPattern,
  type Pattern,
  type WhenKey,
} from './values.js'

// ---------------------------------------------------------------------------------------------
// Evaluation context: lazily derived request values. A class (not a closure or a plain object)
// only so that every request gets the same hidden class and each value is derived at most once;
// it lives for one evaluate() call.

export class EvalContext {
  readonly facts: RequestFacts
  readonly principal: string | null
  readonly auth: RequestAuth | null
  private _host: string | undefined
  private _srcIp: IpAddr | null | undefined
  private _remoteIp: IpAddr | null | undefined
  private _dstIp: IpAddr | null | undefined
  private _iss: string | null | undefined
  private _sub: string | null | undefined

  constructor(facts: RequestFacts) {
    this.facts = facts
    this.principal = facts.source.principal || null
    this.auth = facts.request.auth
  }

  /** Istio derives the namespace from the peer principal: no principal, no namespace. */
  get namespace(): string | null {
    return this.principal === null ? null : this.facts.source.namespace
  }
  get host(): string {
    return (this._host ??= this.facts.request.host.toLowerCase())
  }
  get srcIp(): IpAddr | null {
    if (this._srcIp === undefined) this._srcIp = parseRequestIp(this.facts.source.ip)
    return this._srcIp
  }
  get remoteIp(): IpAddr | null {
    if (this._remoteIp === undefined) {
      const r = this.facts.source.remoteIp
      this._remoteIp = r === undefined || r === '' ? this.srcIp : parseRequestIp(r)
    }
    return this._remoteIp
  }
  get dstIp(): IpAddr | null {
    if (this._dstIp === undefined) {
      const d = this.facts.destination.ip
      this._dstIp = d === undefined || d === '' ? null : parseRequestIp(d)
    }
    return this._dstIp
  }
  /** JWT issuer and subject, as Istio reads them from the payload (`iss`, `sub`). */
  get iss(): string | null {
    if (this._iss === undefined) this.splitRequestPrincipal()
    return this._iss ?? null
  }
  get sub(): string | null {
    if (this._sub === undefined) this.splitRequestPrincipal()
    return this._sub ?? null
  }
  private splitRequestPrincipal(): void {
    const a = this.auth
    if (a === null) {
      this._iss = null
      this._sub = null
      return
    }
    const iss = a.claims.iss
    const sub = a.claims.sub
    const slash = a.principal.lastIndexOf('/')
    this._iss = typeof iss === 'string' ? iss : slash === -1 ? a.principal : a.principal.slice(0, slash)
    this._sub = typeof sub === 'string' ? sub : slash === -1 ? null : a.principal.slice(slash + 1)
  }
}

export type Pred = (ctx: EvalContext) => boolean

// ---------------------------------------------------------------------------------------------
// String matching (Envoy's StringMatcher as Istio generates it)

export interface StringMatcher {
  /** The only exact value, when there is exactly one (no Set allocated). */
  readonly one: string | null
  readonly exact: ReadonlySet<string> | null
  readonly prefixes: readonly string[]
  readonly suffixes: readonly string[]
  /** "*": any non-empty value (Istio generates the regex `.+`). */
  readonly presence: boolean
  readonly templates: readonly RegExp[]
}

const NONE: readonly never[] = Object.freeze([])

export function stringMatcher(patterns: readonly Pattern[], templates: readonly RegExp[] = NONE): StringMatcher {
  let exact: Set<string> | null = null
  let one: string | null = null
  let prefixes: string[] | null = null
  let suffixes: string[] | null = null
  let presence = false
  for (const p of patterns) {
    if (p.kind === 'presence') presence = true
    else if (p.kind === 'exact') {
      if (exact) exact.add(p.value)
      else if (one === null || one === p.value) one = p.value
      else {
        exact = new Set([one, p.value])
        one = null
      }
    } else if (p.kind === 'prefix') (prefixes ??= []).push(p.value)
    else (suffixes ??= []).push(p.value)
  }
  return { one, exact, prefixes: prefixes ?? NONE, suffixes: suffixes ?? NONE, presence, templates }
}

export function matchString(m: StringMatcher, v: string): boolean {
  if (m.one !== null && m.one === v) return true
  if (m.exact !== null && m.exact.has(v)) return true
  if (m.presence && v.length > 0) return true
  for (let i = 0; i < m.prefixes.length; i++) if (v.startsWith(m.prefixes[i]!)) return true
  for (let i = 0; i < m.suffixes.length; i++) if (v.endsWith(m.suffixes[i]!)) return true
  for (let i = 0; i < m.templates.length; i++) if (m.templates[i]!.test(v)) return true
  return false
}

/**
 * A header value as Istio's generated regex `^v$|^v,.*|.*,v,.*|.*,v$` sees it: the whole value, or
 * any comma-separated element (a repeated header arrives joined with ","). Elements lose their
 * optional whitespace (SP, HTAB): one line `a, b` is the same list as two lines (RFC 9110 §5.3).
 * Splits only when the value holds a comma, so the common case is one matchString().
 */
export function matchListValue(m: StringMatcher, v: string): boolean {
  if (matchString(m, v)) return true
  let comma = v.indexOf(',')
  if (comma === -1) return false
  let start = 0
  for (;;) {
    const end = comma === -1 ? v.length : comma
    let a = start
    let b = end
    while (a < b && isOws(v.charCodeAt(a))) a++
    while (b > a && isOws(v.charCodeAt(b - 1))) b--
    if (matchString(m, v.slice(a, b))) return true
    if (comma === -1) return false
    start = comma + 1
    comma = v.indexOf(',', start)
  }
}

const isOws = (c: number): boolean => c === 32 || c === 9

/** A space-delimited claim (`scope: "read write"`) as Envoy's normalize_payload turns it into a list. */
function matchSpaceList(m: StringMatcher, v: string): boolean {
  for (const e of v.split(' ')) if (e !== '' && matchString(m, e)) return true
  return false
}

function matchCidrs(cidrs: readonly Cidr[], ip: IpAddr | null): boolean {
  if (ip === null) return false
  for (let i = 0; i < cidrs.length; i++) if (cidrContains(cidrs[i]!, ip)) return true
  return false
}

function cidrsOf(values: readonly string[]): Cidr[] {
  return values.map((v) => {
    const c = parseCidr(v)
    if (!c) throw new TypeError(`invalid CIDR "${v}" (validate policies before compiling)`)
    return c
  })
}

function portsOf(values: readonly string[]): Set<number> {
  return new Set(
    values.map((v) => {
      const p = parsePort(v)
      if (p === null) throw new TypeError(`invalid port "${v}" (validate policies before compiling)`)
      return p
    }),
  )
}

// ---------------------------------------------------------------------------------------------
// Field predicates: plain data read by one switch (testField), no closure per field. `values` OR;
// `notValues` is the same matcher negated; both present → two predicates, ANDed.

export type FieldKind =
  | 'principal'
  | 'namespace'
  | 'requestPrincipal'
  | 'srcIp'
  | 'remoteIp'
  | 'dstIp'
  | 'host'
  | 'port'
  | 'method'
  | 'path'
  | 'header'
  | 'sni'
  | 'audiences'
  | 'presenter'
  | 'claims'

type Side = { readonly kind: 'any' } | Pattern
interface RequestPrincipalPair {
  readonly iss: Side
  readonly sub: Side
}

export type RuleSection = 'from' | 'to' | 'when'

export interface FieldPred {
  readonly kind: FieldKind
  readonly neg: boolean
  /** Where the field sits in its rule, for explanations: `from[entry].source.<name>`. */
  readonly section: RuleSection
  readonly entry: number
  /** The policy field name (`principals`, `notPrincipals`, `values`, `notValues`…). */
  readonly name: string
  /** True when the field reads request.auth (JWT): with no token it cannot match positively. */
  readonly usesAuth: boolean
  readonly str: StringMatcher | null
  readonly cidrs: readonly Cidr[] | null
  readonly ports: ReadonlySet<number> | null
  /** request.headers[name] (lower case), or null. */
  readonly header: string | null
  /** request.headers "*": Envoy's present_match (the header exists, even empty). */
  readonly headerPresent: boolean
  readonly claims: readonly string[] | null
  /** The claim is `scope` or `permission`: a string value is a space-delimited list (Istio). */
  readonly spaceList: boolean
  readonly pairs: readonly RequestPrincipalPair[] | null
}

// Istio has jwt_authn normalize these top-level claims into lists (space_delimited_claims), so
// `request.auth.claims[scope]` matches one scope of "read write", never the whole string.
const SPACE_DELIMITED_CLAIMS: ReadonlySet<string> = new Set(['scope', 'permission'])

const AUTH_KINDS: ReadonlySet<FieldKind> = new Set(['requestPrincipal', 'audiences', 'presenter', 'claims'])

interface FieldArg {
  readonly header?: string
  readonly claims?: readonly string[]
}

function pred(kind: FieldKind, neg: boolean, section: RuleSection, entry: number, name: string, values: readonly string[], arg: FieldArg | undefined): FieldPred {
  let str: StringMatcher | null = null
  let cidrs: Cidr[] | null = null
  let ports: Set<number> | null = null
  let pairs: RequestPrincipalPair[] | null = null
  let headerPresent = false
  switch (kind) {
    case 'principal':
      str = stringMatcher(values.map(principalPattern))
      break
    case 'srcIp':
    case 'remoteIp':
    case 'dstIp':
      cidrs = cidrsOf(values)
      break
    case 'port':
      ports = portsOf(values)
      break
    case 'host':
      str = stringMatcher(values.map((v) => parsePattern(v.toLowerCase())))
      break
    case 'path':
      str = stringMatcher(
        values.filter((v) => !containsPathTemplate(v)).map(parsePattern),
        values.some(containsPathTemplate) ? values.filter(containsPathTemplate).map(compilePathTemplate) : NONE,
      )
      break
    case 'header':
      headerPresent = values.includes('*')
      str = stringMatcher(values.filter((v) => v !== '*').map(parsePattern))
      break
    case 'requestPrincipal':
      pairs = values.map(requestPrincipalPair)
      break
    default:
      str = stringMatcher(values.map(parsePattern))
  }
  return {
    kind,
    neg,
    section,
    entry,
    name,
    usesAuth: AUTH_KINDS.has(kind),
    str,
    cidrs,
    ports,
    header: arg?.header ?? null,
    headerPresent,
    claims: arg?.claims ?? null,
    spaceList: arg?.claims !== undefined && arg.claims.length === 1 && SPACE_DELIMITED_CLAIMS.has(arg.claims[0]!),
    pairs,
  }
}

/** Appends the predicates of one field: `values` as is, `notValues` negated (both present: two, ANDed). */
function fieldPreds(
  out: FieldPred[],
  section: RuleSection,
  entry: number,
  name: string,
  notName: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  kind: FieldKind,
  arg?: FieldArg,
): void {
  if (values) out.push(pred(kind, false, section, entry, name, values, arg))
  if (notValues) out.push(pred(kind, true, section, entry, notName, notValues, arg))
}

/** Istio's requestPrincipalGenerator: `iss/sub` split at the last "/", each side its own matcher. */
function requestPrincipalPair(value: string): RequestPrincipalPair {
  const any: Side = { kind: 'any' }
  const idx = value.lastIndexOf('/')
  const found = idx >= 0
  const iss = found ? value.slice(0, idx) : value
  const sub = found ? value.slice(idx + 1) : ''
  if (value === '*') return { iss: any, sub: any }
  if (value.startsWith('*')) {
    if (found) return { iss: iss === '*' ? any : { kind: 'suffix', value: iss.slice(1) }, sub: { kind: 'exact', value: sub } }
    return { iss: any, sub: { kind: 'suffix', value: value.slice(1) } }
  }
  if (value.endsWith('*')) {
    if (found) return { iss: { kind: 'exact', value: iss }, sub: sub === '*' ? any : { kind: 'prefix', value: sub.slice(0, -1) } }
    return { iss: { kind: 'prefix', value: value.slice(0, -1) }, sub: any }
  }
  return { iss: { kind: 'exact', value: iss }, sub: { kind: 'exact', value: sub } }
}

function matchSide(s: Side, v: string | null): boolean {
  if (v === null) return false
  switch (s.kind) {
    case 'any':
    case 'presence':
      return v.length > 0
    case 'exact':
      return v === s.value
    case 'prefix':
      return v.startsWith(s.value)
    case 'suffix':
      return v.endsWith(s.value)
  }
}

function headerValue(c: EvalContext, name: string): string | undefined {
  const v = c.facts.request.headers[name]
  // Envoy matches a repeated header as its values joined with ","
  return Array.isArray(v) ? v.join(',') : v
}

/** A JWT claim value matches when it is a matching string, or a list with a matching string. */
function claimMatches(m: StringMatcher, v: unknown, spaceList = false): boolean {
  if (typeof v === 'string') return spaceList ? matchSpaceList(m, v) : matchString(m, v)
  if (Array.isArray(v)) {
    for (const e of v) if (typeof e === 'string' && matchString(m, e)) return true
  }
  return false
}

function claimValue(c: EvalContext, claims: readonly string[]): unknown {
  let cur: unknown = c.auth?.claims
  for (const k of claims) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined
    cur = (cur as Record<string, unknown>)[k]
  }
  return cur
}

/** The positive match of one field (before `neg`). */
function positive(p: FieldPred, c: EvalContext): boolean {
  switch (p.kind) {
    case 'principal':
      return c.principal !== null && matchString(p.str!, c.principal)
    case 'namespace': {
      const ns = c.namespace
      return ns !== null && matchString(p.str!, ns)
    }
    case 'method':
      return matchString(p.str!, c.facts.request.method)
    case 'path':
      return matchString(p.str!, c.facts.request.path)
    // Istio's HostMatcher: case-insensitive, against the whole authority (port included when sent).
    case 'host':
      return c.facts.request.host.length > 0 && matchString(p.str!, c.host)
    case 'port':
      return p.ports!.has(c.facts.destination.port)
    case 'srcIp':
      return matchCidrs(p.cidrs!, c.srcIp)
    case 'remoteIp':
      return matchCidrs(p.cidrs!, c.remoteIp)
    case 'dstIp':
      return matchCidrs(p.cidrs!, c.dstIp)
    case 'header': {
      const h = headerValue(c, p.header!)
      return h !== undefined && (p.headerPresent || matchListValue(p.str!, h))
    }
    case 'sni':
      return matchString(p.str!, c.facts.request.sni ?? '')
    case 'requestPrincipal': {
      if (c.auth === null) return false
      const iss = c.iss
      const sub = c.sub
      for (const pair of p.pairs!) if (matchSide(pair.iss, iss) && matchSide(pair.sub, sub)) return true
      return false
    }
    case 'audiences':
      return c.auth !== null && claimMatches(p.str!, c.auth.audiences)
    case 'presenter':
      return c.auth !== null && c.auth.presenter !== null && matchString(p.str!, c.auth.presenter)
    case 'claims':
      return c.auth !== null && claimMatches(p.str!, claimValue(c, p.claims!), p.spaceList)
  }
}

export function testField(p: FieldPred, c: EvalContext): boolean {
  return positive(p, c) !== p.neg
}

const NO_JWT = '(no request principal: JWT not validated)'
const show = (v: string | null | undefined): string => (v === null || v === undefined ? '(none)' : JSON.stringify(v))

/** The request value a field looked at, for explanations. */
export function factOf(p: FieldPred, c: EvalContext): string {
  const f = c.facts
  switch (p.kind) {
    case 'principal':
      return show(c.principal)
    case 'namespace':
      return show(c.namespace)
    case 'method':
      return show(f.request.method)
    case 'path':
      return show(f.request.path)
    case 'host':
      return show(f.request.host)
    case 'port':
      return String(f.destination.port)
    case 'srcIp':
      return show(f.source.ip)
    case 'remoteIp':
      return show(f.source.remoteIp ?? f.source.ip)
    case 'dstIp':
      return show(f.destination.ip)
    case 'header':
      return show(headerValue(c, p.header!))
    case 'sni':
      return show(f.request.sni)
    case 'requestPrincipal':
      return c.auth === null ? NO_JWT : show(c.auth.principal)
    case 'audiences':
      return c.auth === null ? NO_JWT : JSON.stringify(c.auth.audiences)
    case 'presenter':
      return c.auth === null ? NO_JWT : show(c.auth.presenter)
    case 'claims':
      return c.auth === null ? NO_JWT : (JSON.stringify(claimValue(c, p.claims!)) ?? '(absent)')
  }
}

const WHEN_KINDS: Record<Exclude<WhenKey['kind'], 'request.headers' | 'request.auth.claims'>, FieldKind> = {
  'source.ip': 'srcIp',
  'remote.ip': 'remoteIp',
  'destination.ip': 'dstIp',
  'destination.port': 'port',
  'source.namespace': 'namespace',
  'source.principal': 'principal',
  'connection.sni': 'sni',
  'request.auth.principal': 'requestPrincipal',
  'request.auth.audiences': 'audiences',
  'request.auth.presenter': 'presenter',
}

function whenPreds(out: FieldPred[], entry: number, key: WhenKey, values: readonly string[] | undefined, notValues: readonly string[] | undefined): void {
  if (key.kind === 'request.headers') fieldPreds(out, 'when', entry, 'values', 'notValues', values, notValues, 'header', { header: key.name })
  else if (key.kind === 'request.auth.claims') fieldPreds(out, 'when', entry, 'values', 'notValues', values, notValues, 'claims', { claims: key.claims })
  else fieldPreds(out, 'when', entry, 'values', 'notValues', values, notValues, WHEN_KINDS[key.kind])
}

// ---------------------------------------------------------------------------------------------
// Rules

export interface CompiledRule {
  readonly index: number
  /** null: no `from` (any source). Otherwise OR over entries, AND within an entry. */
  readonly from: readonly (readonly FieldPred[])[] | null
  readonly to: readonly (readonly FieldPred[])[] | null
  /** AND */
  readonly when: readonly FieldPred[]
  readonly usesAuth: boolean
  /** Exact SPIFFE IDs one of which the peer must have for the rule to match (index key), or null. */
  readonly principalKeys: readonly string[] | null
  /** Exact namespaces one of which the peer must be in (index key), or null. */
  readonly namespaceKeys: readonly string[] | null
  /** Exact paths one of which the request must have for the rule to match (index key), or null. */
  readonly pathKeys: readonly string[] | null
}

function all(preds: readonly FieldPred[], c: EvalContext): boolean {
  for (let i = 0; i < preds.length; i++) if (!testField(preds[i]!, c)) return false
  return true
}

function some(entries: readonly (readonly FieldPred[])[], c: EvalContext): boolean {
  for (let i = 0; i < entries.length; i++) if (all(entries[i]!, c)) return true
  return false
}

export function ruleMatches(r: CompiledRule, c: EvalContext): boolean {
  return (r.from === null || some(r.from, c)) && (r.to === null || some(r.to, c)) && all(r.when, c)
}

/** `rules[0].from[1].source.principals`: the field's JSON path inside its policy's spec. */
export function fieldPath(p: FieldPred, ruleIndex: number): string {
  const inner = p.section === 'from' ? 'source.' : p.section === 'to' ? 'operation.' : ''
  return `rules[${ruleIndex}].${p.section}[${p.entry}].${inner}${p.name}`
}

/** The first predicate that failed, for explanations; null when the rule matches. */
export function ruleMismatch(r: CompiledRule, c: EvalContext): string | null {
  const firstFail = (preds: readonly FieldPred[]): FieldPred | undefined => preds.find((p) => !testField(p, c))
  const describe = (p: FieldPred) => `${fieldPath(p, r.index)} did not match ${factOf(p, c)}`
  if (r.from !== null && !some(r.from, c)) {
    const fails = r.from.map((e) => firstFail(e)).filter((p): p is FieldPred => p !== undefined)
    return fails.map(describe).join('; ')
  }
  if (r.to !== null && !some(r.to, c)) {
    const fails = r.to.map((e) => firstFail(e)).filter((p): p is FieldPred => p !== undefined)
    return fails.map(describe).join('; ')
  }
  const w = firstFail(r.when)
  return w ? describe(w) : null
}

/** The exact values of a positive string predicate, or null when it has any pattern. */
function exactValues(p: FieldPred | undefined): string[] | null {
  const m = p?.str
  if (!m || m.presence || m.prefixes.length || m.suffixes.length || m.templates.length) return null
  return m.one !== null ? [m.one] : m.exact ? [...m.exact] : null
}

/**
 * Index keys: when every `from` entry requires an exact principal, the rule can only match a peer
 * with one of them (likewise exact `namespaces`, and exact `paths` in every `to` entry), so
 * evaluate() never needs to look at it for other requests.
 */
function indexKeys(entries: readonly (readonly FieldPred[])[] | null, kind: FieldKind): string[] | null {
  if (entries === null) return null
  let keys: string[] | null = null
  for (const e of entries) {
    const vals = exactValues(e.find((p) => p.kind === kind && !p.neg))
    if (vals === null) return null
    if (keys === null) keys = vals
    else for (const v of vals) keys.push(v)
  }
  return keys
}

const NO_PREDS: readonly FieldPred[] = Object.freeze([])

export function compileRule(rule: Rule, index: number): CompiledRule {
  let from: FieldPred[][] | null = null
  if (rule.from) {
    from = []
    for (let i = 0; i < rule.from.length; i++) {
      const s = rule.from[i]!.source
      const out: FieldPred[] = []
      fieldPreds(out, 'from', i, 'principals', 'notPrincipals', s.principals, s.notPrincipals, 'principal')
      fieldPreds(out, 'from', i, 'namespaces', 'notNamespaces', s.namespaces, s.notNamespaces, 'namespace')
      fieldPreds(out, 'from', i, 'requestPrincipals', 'notRequestPrincipals', s.requestPrincipals, s.notRequestPrincipals, 'requestPrincipal')
      fieldPreds(out, 'from', i, 'ipBlocks', 'notIpBlocks', s.ipBlocks, s.notIpBlocks, 'srcIp')
      fieldPreds(out, 'from', i, 'remoteIpBlocks', 'notRemoteIpBlocks', s.remoteIpBlocks, s.notRemoteIpBlocks, 'remoteIp')
      from.push(out)
    }
  }
  let to: FieldPred[][] | null = null
  if (rule.to) {
    to = []
    for (let i = 0; i < rule.to.length; i++) {
      const o = rule.to[i]!.operation
      const out: FieldPred[] = []
      fieldPreds(out, 'to', i, 'hosts', 'notHosts', o.hosts, o.notHosts, 'host')
      fieldPreds(out, 'to', i, 'ports', 'notPorts', o.ports, o.notPorts, 'port')
      fieldPreds(out, 'to', i, 'methods', 'notMethods', o.methods, o.notMethods, 'method')
      fieldPreds(out, 'to', i, 'paths', 'notPaths', o.paths, o.notPaths, 'path')
      to.push(out)
    }
  }
  let when: readonly FieldPred[] = NO_PREDS
  if (rule.when) {
    const out: FieldPred[] = []
    for (let i = 0; i < rule.when.length; i++) {
      const w = rule.when[i]!
      const k = parseWhenKey(w.key)
      if (!k.ok) throw new TypeError(`invalid condition key "${w.key}" (validate policies before compiling)`)
      whenPreds(out, i, k.key, w.values, w.notValues)
    }
    when = out
  }
  const usesAuth = (from?.some((e) => e.some((p) => p.usesAuth)) ?? false) || when.some((p) => p.usesAuth)
  return {
    index,
    from,
    to,
    when,
    usesAuth,
    principalKeys: indexKeys(from, 'principal'),
    namespaceKeys: indexKeys(from, 'namespace'),
    pathKeys: indexKeys(to, 'path'),
  }
}
