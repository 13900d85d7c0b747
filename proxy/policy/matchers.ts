// Precompiled matchers: every policy value is turned into sets, prefix/suffix arrays, template
// regexes and integer CIDRs once, at compile time. A predicate reads the request through an
// EvalContext that parses each request-side value (IPs, lower-cased host) at most once.
import { cidrContains, parseCidr, parseRequestIp, type Cidr, type IpAddr } from './ip.js'
import type { RequestAuth, RequestFacts, Rule } from './types.js'
import {
  compilePathTemplate,
  containsPathTemplate,
  isRequestAuthKey,
  parsePattern,
  parsePort,
  parseWhenKey,
  principalPattern,
  type Pattern,
  type WhenKey,
} from './values.js'

// ---------------------------------------------------------------------------------------------
// Evaluation context: lazily derived request values.

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
  readonly exact: ReadonlySet<string> | null
  readonly prefixes: readonly string[]
  readonly suffixes: readonly string[]
  /** "*": any non-empty value (Istio generates the regex `.+`). */
  readonly presence: boolean
  readonly templates: readonly RegExp[]
}

export function stringMatcher(patterns: readonly Pattern[], templates: readonly RegExp[] = []): StringMatcher {
  const exact = new Set<string>()
  const prefixes: string[] = []
  const suffixes: string[] = []
  let presence = false
  for (const p of patterns) {
    if (p.kind === 'presence') presence = true
    else if (p.kind === 'exact') exact.add(p.value)
    else if (p.kind === 'prefix') prefixes.push(p.value)
    else suffixes.push(p.value)
  }
  return { exact: exact.size ? exact : null, prefixes, suffixes, presence, templates }
}

export function matchString(m: StringMatcher, v: string): boolean {
  if (m.exact !== null && m.exact.has(v)) return true
  if (m.presence && v.length > 0) return true
  for (let i = 0; i < m.prefixes.length; i++) if (v.startsWith(m.prefixes[i]!)) return true
  for (let i = 0; i < m.suffixes.length; i++) if (v.endsWith(m.suffixes[i]!)) return true
  for (let i = 0; i < m.templates.length; i++) if (m.templates[i]!.test(v)) return true
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
// Field predicates. `values` OR, `notValues` NOT(OR); both present → AND of the two.

export interface FieldPred {
  /** JSON path inside the policy, for explanations (`rules[0].from[1].source.principals`). */
  readonly path: string
  readonly test: Pred
  /** True when the field reads request.auth (JWT): with no token it cannot match. */
  readonly usesAuth: boolean
  /** The request value the field looked at, for explanations. */
  readonly fact: (ctx: EvalContext) => string
}

type Positive = { test: Pred; fact: (ctx: EvalContext) => string; usesAuth?: boolean }

/** `prefix + name` for the values, `prefix + notName` for the negated ones (principals/notPrincipals, values/notValues). */
function fieldPreds(
  prefix: string,
  name: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  make: (vs: readonly string[]) => Positive,
): FieldPred[] {
  const out: FieldPred[] = []
  if (values) {
    const p = make(values)
    out.push({ path: prefix + name, test: p.test, fact: p.fact, usesAuth: p.usesAuth ?? false })
  }
  if (notValues) {
    const p = make(notValues)
    const t = p.test
    const notName = `not${name[0]!.toUpperCase()}${name.slice(1)}`
    out.push({ path: prefix + notName, test: (c) => !t(c), fact: p.fact, usesAuth: p.usesAuth ?? false })
  }
  return out
}

const show = (v: string | null | undefined): string => (v === null || v === undefined ? '(none)' : JSON.stringify(v))

function principalMatcher(vs: readonly string[]): Positive {
  const m = stringMatcher(vs.map(principalPattern))
  return { test: (c) => c.principal !== null && matchString(m, c.principal), fact: (c) => show(c.principal) }
}

function namespaceMatcher(vs: readonly string[]): Positive {
  const m = stringMatcher(vs.map(parsePattern))
  return { test: (c) => c.namespace !== null && matchString(m, c.namespace), fact: (c) => show(c.namespace) }
}

/** Istio's requestPrincipalGenerator: `iss/sub` split at the last "/", each side its own matcher. */
function requestPrincipalMatcher(vs: readonly string[]): Positive {
  type Side = { kind: 'any' } | Pattern
  const any: Side = { kind: 'any' }
  const pairs: { iss: Side; sub: Side }[] = vs.map((value) => {
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
  })
  const side = (s: Side, v: string | null): boolean => {
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
  return {
    test: (c) => {
      if (c.auth === null) return false
      const iss = c.iss
      const sub = c.sub
      for (const p of pairs) if (side(p.iss, iss) && side(p.sub, sub)) return true
      return false
    },
    fact: (c) => (c.auth === null ? '(no request principal: JWT not validated)' : show(c.auth.principal)),
    usesAuth: true,
  }
}

function ipMatcher(get: (c: EvalContext) => IpAddr | null, raw: (c: EvalContext) => string | undefined) {
  return (vs: readonly string[]): Positive => {
    const cidrs = cidrsOf(vs)
    return { test: (c) => matchCidrs(cidrs, get(c)), fact: (c) => show(raw(c)) }
  }
}
const srcIpMatcher = ipMatcher(
  (c) => c.srcIp,
  (c) => c.facts.source.ip,
)
const remoteIpMatcher = ipMatcher(
  (c) => c.remoteIp,
  (c) => c.facts.source.remoteIp ?? c.facts.source.ip,
)
const dstIpMatcher = ipMatcher(
  (c) => c.dstIp,
  (c) => c.facts.destination.ip,
)

function portMatcher(vs: readonly string[]): Positive {
  const ports = portsOf(vs)
  return { test: (c) => ports.has(c.facts.destination.port), fact: (c) => String(c.facts.destination.port) }
}

/** Istio's HostMatcher: case-insensitive, against the whole authority (port included when sent). */
function hostMatcher(vs: readonly string[]): Positive {
  const m = stringMatcher(vs.map((v) => parsePattern(v.toLowerCase())))
  return { test: (c) => c.facts.request.host.length > 0 && matchString(m, c.host), fact: (c) => show(c.facts.request.host) }
}

function methodMatcher(vs: readonly string[]): Positive {
  const m = stringMatcher(vs.map(parsePattern))
  return { test: (c) => matchString(m, c.facts.request.method), fact: (c) => show(c.facts.request.method) }
}

function pathMatcher(vs: readonly string[]): Positive {
  const templates = vs.filter(containsPathTemplate).map(compilePathTemplate)
  const m = stringMatcher(vs.filter((v) => !containsPathTemplate(v)).map(parsePattern), templates)
  return { test: (c) => matchString(m, c.facts.request.path), fact: (c) => show(c.facts.request.path) }
}

function headerValue(c: EvalContext, name: string): string | undefined {
  const v = c.facts.request.headers[name]
  // Envoy matches a repeated header as its values joined with ","
  return Array.isArray(v) ? v.join(',') : v
}

/** Istio's HeaderMatcher: "*" is Envoy's present_match (the header exists, even empty). */
function headerMatcher(name: string) {
  return (vs: readonly string[]): Positive => {
    const present = vs.includes('*')
    const m = stringMatcher(vs.filter((v) => v !== '*').map(parsePattern))
    return {
      test: (c) => {
        const h = headerValue(c, name)
        if (h === undefined) return false
        return present || matchString(m, h)
      },
      fact: (c) => show(headerValue(c, name)),
    }
  }
}

/** A JWT claim value matches when it is a matching string, or a list with a matching string. */
function claimMatches(m: StringMatcher, v: unknown): boolean {
  if (typeof v === 'string') return matchString(m, v)
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

const noJwt = '(no request principal: JWT not validated)'

function whenMatcher(key: WhenKey): (vs: readonly string[]) => Positive {
  switch (key.kind) {
    case 'request.headers':
      return headerMatcher(key.name)
    case 'source.ip':
      return srcIpMatcher
    case 'remote.ip':
      return remoteIpMatcher
    case 'destination.ip':
      return dstIpMatcher
    case 'destination.port':
      return portMatcher
    case 'source.namespace':
      return namespaceMatcher
    case 'source.principal':
      return principalMatcher
    case 'connection.sni':
      return (vs) => {
        const m = stringMatcher(vs.map(parsePattern))
        return { test: (c) => matchString(m, c.facts.request.sni ?? ''), fact: (c) => show(c.facts.request.sni) }
      }
    case 'request.auth.principal':
      return requestPrincipalMatcher
    case 'request.auth.audiences':
      return (vs) => {
        const m = stringMatcher(vs.map(parsePattern))
        return {
          test: (c) => c.auth !== null && claimMatches(m, c.auth.audiences),
          fact: (c) => (c.auth === null ? noJwt : JSON.stringify(c.auth.audiences)),
          usesAuth: true,
        }
      }
    case 'request.auth.presenter':
      return (vs) => {
        const m = stringMatcher(vs.map(parsePattern))
        return {
          test: (c) => c.auth !== null && c.auth.presenter !== null && matchString(m, c.auth.presenter),
          fact: (c) => (c.auth === null ? noJwt : show(c.auth.presenter)),
          usesAuth: true,
        }
      }
    case 'request.auth.claims': {
      const claims = key.claims
      return (vs) => {
        const m = stringMatcher(vs.map(parsePattern))
        return {
          test: (c) => c.auth !== null && claimMatches(m, claimValue(c, claims)),
          fact: (c) => (c.auth === null ? noJwt : JSON.stringify(claimValue(c, claims)) ?? '(absent)'),
          usesAuth: true,
        }
      }
    }
  }
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
  /** Exact paths one of which the request must have for the rule to match (index key), or null. */
  readonly pathKeys: readonly string[] | null
}

function all(preds: readonly FieldPred[], c: EvalContext): boolean {
  for (let i = 0; i < preds.length; i++) if (!preds[i]!.test(c)) return false
  return true
}

function some(entries: readonly (readonly FieldPred[])[], c: EvalContext): boolean {
  for (let i = 0; i < entries.length; i++) if (all(entries[i]!, c)) return true
  return false
}

export function ruleMatches(r: CompiledRule, c: EvalContext): boolean {
  return (r.from === null || some(r.from, c)) && (r.to === null || some(r.to, c)) && all(r.when, c)
}

/** The first predicate that failed, for explanations; null when the rule matches. */
export function ruleMismatch(r: CompiledRule, c: EvalContext): string | null {
  const firstFail = (preds: readonly FieldPred[]): FieldPred | undefined => preds.find((p) => !p.test(c))
  const describe = (p: FieldPred) => `${p.path} did not match ${p.fact(c)}`
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

function exactKeys(values: readonly string[] | undefined, toPattern: (v: string) => Pattern): string[] | null {
  if (!values) return null
  const out: string[] = []
  for (const v of values) {
    const p = toPattern(v)
    if (p.kind !== 'exact') return null
    out.push(p.value)
  }
  return out
}

export function compileRule(rule: Rule, index: number): CompiledRule {
  const base = `rules[${index}]`
  const from =
    rule.from?.map((f, i) => {
      const s = f.source
      const p = `${base}.from[${i}].source.`
      return [
        ...fieldPreds(p, 'principals', s.principals, s.notPrincipals, principalMatcher),
        ...fieldPreds(p, 'namespaces', s.namespaces, s.notNamespaces, namespaceMatcher),
        ...fieldPreds(p, 'requestPrincipals', s.requestPrincipals, s.notRequestPrincipals, requestPrincipalMatcher),
        ...fieldPreds(p, 'ipBlocks', s.ipBlocks, s.notIpBlocks, srcIpMatcher),
        ...fieldPreds(p, 'remoteIpBlocks', s.remoteIpBlocks, s.notRemoteIpBlocks, remoteIpMatcher),
      ]
    }) ?? null
  const to =
    rule.to?.map((t, i) => {
      const o = t.operation
      const p = `${base}.to[${i}].operation.`
      return [
        ...fieldPreds(p, 'hosts', o.hosts, o.notHosts, hostMatcher),
        ...fieldPreds(p, 'ports', o.ports, o.notPorts, portMatcher),
        ...fieldPreds(p, 'methods', o.methods, o.notMethods, methodMatcher),
        ...fieldPreds(p, 'paths', o.paths, o.notPaths, pathMatcher),
      ]
    }) ?? null
  const when =
    rule.when?.flatMap((w, i) => {
      const k = parseWhenKey(w.key)
      if (!k.ok) throw new TypeError(`invalid condition key "${w.key}" (validate policies before compiling)`)
      const preds = fieldPreds(`${base}.when[${i}].`, 'values', w.values, w.notValues, whenMatcher(k.key))
      return isRequestAuthKey(k.key) ? preds.map((p) => ({ ...p, usesAuth: true })) : preds
    }) ?? []
  const usesAuth = [...(from ?? []).flat(), ...(to ?? []).flat(), ...when].some((p) => p.usesAuth)

  let principalKeys: string[] | null = null
  if (rule.from) {
    principalKeys = []
    for (const f of rule.from) {
      const keys = f.source.principals ? exactKeys(f.source.principals, principalPattern) : null
      if (keys === null) {
        principalKeys = null
        break
      }
      principalKeys.push(...keys)
    }
  }
  let pathKeys: string[] | null = null
  if (rule.to) {
    pathKeys = []
    for (const t of rule.to) {
      const paths = t.operation.paths
      const keys = paths && !paths.some(containsPathTemplate) ? exactKeys(paths, parsePattern) : null
      if (keys === null) {
        pathKeys = null
        break
      }
      pathKeys.push(...keys)
    }
  }
  return { index, from, to, when, usesAuth, principalKeys, pathKeys }
}
