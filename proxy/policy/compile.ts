// compile() turns validated documents into matchers once per snapshot; selectForWorkload()
// resolves scope (selector / namespace / root namespace) and PeerAuthentication inheritance once
// per workload and builds the rule indexes; evaluate() is then a pure, synchronous walk with no
// parsing and no config lookups.
import { compileRule, EvalContext, ruleMatches, ruleMismatch, type CompiledRule, type FieldKind, type FieldPred } from './matchers.js'
import {
  DEFAULT_ROOT_NAMESPACE,
  DRY_RUN_ANNOTATIONS,
  type AuthorizationPolicy,
  type AuthzAction,
  type Decision,
  type DryRunResult,
  type MtlsMode,
  type MtlsModeInput,
  type PeerAuthentication,
  type PolicyDocument,
  type RequestFacts,
} from './types.js'
import { parseGoBool } from './values.js'

export interface CompileOptions {
  /** Policies in this namespace apply mesh-wide. Default `remora-system`. */
  readonly rootNamespace?: string
}

interface CompiledAuthzPolicy {
  readonly id: string
  readonly namespace: string
  readonly selector: Readonly<Record<string, string>> | null
  readonly action: AuthzAction
  readonly dryRun: boolean
  readonly rules: readonly CompiledRule[]
}

interface PeerAuthnEntry {
  readonly id: string
  readonly namespace: string
  readonly name: string
  readonly selector: Readonly<Record<string, string>> | null
  readonly created: number
  readonly mode: MtlsModeInput
  readonly portLevel: ReadonlyMap<number, MtlsModeInput>
}

export interface CompiledPolicySet {
  readonly rootNamespace: string
  /** Sorted by namespace, then name: the order in which policies of one action are tried. */
  readonly authz: readonly CompiledAuthzPolicy[]
  readonly peerAuthn: readonly PeerAuthnEntry[]
}

function isDryRun(p: AuthorizationPolicy): boolean {
  const a = p.metadata.annotations ?? {}
  return DRY_RUN_ANNOTATIONS.some((k) => {
    const v = a[k]
    return v !== undefined && parseGoBool(v) === true
  })
}

function nonEmpty(labels: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> | null {
  return labels && Object.keys(labels).length > 0 ? labels : null
}

/** Compile validated policies (validate() or validateDocuments() first: compile trusts its input). */
export function compile(policies: readonly PolicyDocument[], opts: CompileOptions = {}): CompiledPolicySet {
  const authz: CompiledAuthzPolicy[] = []
  const peerAuthn: PeerAuthnEntry[] = []
  for (const p of policies) {
    const id = `${p.metadata.namespace}/${p.metadata.name}`
    if (p.kind === 'AuthorizationPolicy') {
      authz.push({
        id,
        namespace: p.metadata.namespace,
        selector: nonEmpty(p.spec.selector?.matchLabels),
        action: p.spec.action ?? 'ALLOW',
        dryRun: isDryRun(p),
        rules: (p.spec.rules ?? []).map((r, i) => compileRule(r, i)),
      })
    } else if (p.kind === 'PeerAuthentication') {
      peerAuthn.push(compilePeerAuthn(p, id))
    } // RequestAuthentication: compileRequestAuthn() (request-authn.ts)
  }
  const byName = (a: { namespace: string; id: string }, b: { namespace: string; id: string }) =>
    a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  authz.sort(byName)
  return { rootNamespace: opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE, authz, peerAuthn }
}

function compilePeerAuthn(p: PeerAuthentication, id: string): PeerAuthnEntry {
  const ts = p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : Number.NaN
  const portLevel = new Map<number, MtlsModeInput>()
  for (const [port, v] of Object.entries(p.spec.portLevelMtls ?? {})) portLevel.set(Number(port), v.mode ?? 'UNSET')
  return {
    id,
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    selector: nonEmpty(p.spec.selector?.matchLabels),
    // No timestamp sorts after every timestamp: a policy that says when it was made is "older".
    created: Number.isNaN(ts) ? Number.POSITIVE_INFINITY : ts,
    mode: p.spec.mtls?.mode ?? 'UNSET',
    portLevel,
  }
}

// ---------------------------------------------------------------------------------------------
// Per-workload selection

export interface WorkloadRefInput {
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
}

export interface PeerAuthnResult {
  readonly mode: MtlsMode
  readonly portLevel: ReadonlyMap<number, MtlsMode>
  /** `ns/name` of the most specific PeerAuthentication that set the mode; null for the default (PERMISSIVE). */
  readonly policy: string | null
}

export interface AppliedPolicy {
  readonly policy: string
  readonly action: AuthzAction
  readonly dryRun: boolean
  readonly rules: number
}

/**
 * The rules of one action, in evaluation order (parallel arrays: no object per rule), with
 * indexes on exact principal and exact path. An index entry is a rule number, or a list of them
 * when several rules share the key.
 */
interface Bucket {
  readonly policies: readonly CompiledAuthzPolicy[]
  readonly rules: readonly CompiledRule[]
  readonly byPrincipal: ReadonlyMap<string, number | readonly number[]>
  readonly byNamespace: ReadonlyMap<string, number | readonly number[]>
  readonly byPath: ReadonlyMap<string, number | readonly number[]>
  /** Rules that no index can rule out: always tried. */
  readonly always: readonly number[]
}

/** Opaque: the compiled authorization state of one workload. */
export interface CompiledAuthz {
  readonly deny: Bucket
  readonly allow: Bucket
  readonly audit: Bucket
  readonly allowCount: number
  readonly allowUsesAuth: boolean
  readonly denyDefaultReason: string
  readonly denyDefaultReasonNoJwt: string
  readonly dryRun: readonly CompiledAuthzPolicy[]
}

export interface WorkloadPolicy {
  readonly peerAuthn: PeerAuthnResult
  /** Authorization policies that apply to this workload (dry-run ones included). */
  readonly authzPolicyCount: number
  readonly authzPolicies: readonly AppliedPolicy[]
  readonly authz: CompiledAuthz
  /** The same policies as a TCP connection sees them (L4): see `l4Rule`. */
  readonly authzL4: CompiledAuthz
}

// ---------------------------------------------------------------------------------------------
// L4 (TCP) view. Istio's rule for a connection that carries no HTTP: an ALLOW (or AUDIT) rule that
// uses any HTTP-only field can never match it and is dropped; a DENY rule's HTTP-only fields are
// ignored, so the rule matches more (fails closed). connection.sni, ports, principals, namespaces,
// ipBlocks and destination.ip are L4.

const HTTP_ONLY: ReadonlySet<FieldKind> = new Set<FieldKind>(['requestPrincipal', 'host', 'method', 'path', 'header', 'audiences', 'presenter', 'claims'])
const isHttpOnly = (p: FieldPred): boolean => HTTP_ONLY.has(p.kind)
const usesHttp = (ps: readonly FieldPred[]): boolean => ps.some(isHttpOnly)

function l4Rule(r: CompiledRule, action: AuthzAction): CompiledRule | null {
  if (!((r.from?.some(usesHttp) ?? false) || (r.to?.some(usesHttp) ?? false) || usesHttp(r.when))) return r
  if (action !== 'DENY') return null
  const strip = (ps: readonly FieldPred[]): FieldPred[] => ps.filter((p) => !isHttpOnly(p))
  return { ...r, from: r.from?.map(strip) ?? null, to: r.to?.map(strip) ?? null, when: strip(r.when), usesAuth: false, pathKeys: null }
}

function l4Policy(p: CompiledAuthzPolicy): CompiledAuthzPolicy {
  const rules: CompiledRule[] = []
  for (const r of p.rules) {
    const l4 = l4Rule(r, p.action)
    if (l4 !== null) rules.push(l4)
  }
  return { ...p, rules }
}

function selects(selector: Readonly<Record<string, string>> | null, labels: Readonly<Record<string, string>>): boolean {
  if (selector === null) return true
  for (const k in selector) if (labels[k] !== selector[k]) return false
  return true
}

const EMPTY: readonly number[] = Object.freeze([])

function addKey(m: Map<string, number | number[]>, k: string, i: number): void {
  const l = m.get(k)
  if (l === undefined) m.set(k, i)
  else if (typeof l === 'number') {
    if (l !== i) m.set(k, [l, i])
  } else if (l[l.length - 1] !== i) l.push(i)
}

function bucket(policies: readonly CompiledAuthzPolicy[]): Bucket {
  const ps: CompiledAuthzPolicy[] = []
  const rules: CompiledRule[] = []
  const byPrincipal = new Map<string, number | number[]>()
  const byNamespace = new Map<string, number | number[]>()
  const byPath = new Map<string, number | number[]>()
  const always: number[] = []
  for (const p of policies) {
    for (const rule of p.rules) {
      const i = rules.length
      ps.push(p)
      rules.push(rule)
      if (rule.principalKeys) for (const k of rule.principalKeys) addKey(byPrincipal, k, i)
      else if (rule.namespaceKeys) for (const k of rule.namespaceKeys) addKey(byNamespace, k, i)
      else if (rule.pathKeys) for (const k of rule.pathKeys) addKey(byPath, k, i)
      else always.push(i)
    }
  }
  return { policies: ps, rules, byPrincipal, byNamespace, byPath, always }
}

const MAX_NAMED = 5

export function selectForWorkload(set: CompiledPolicySet, workload: WorkloadRefInput): WorkloadPolicy {
  const applied = set.authz.filter((p) => (p.namespace === workload.namespace || p.namespace === set.rootNamespace) && selects(p.selector, workload.labels))
  const enforced = (a: AuthzAction) => applied.filter((p) => !p.dryRun && p.action === a)
  const allows = enforced('ALLOW')
  const names = allows.map((p) => p.id)
  const listed = names.length > MAX_NAMED ? `${names.slice(0, MAX_NAMED).join(', ')} and ${names.length - MAX_NAMED} more` : names.join(', ')
  const denyDefaultReason = `deny: no ALLOW policy matched (${allows.length} applied${allows.length ? `: ${listed}` : ''})`
  const build = (view: (p: CompiledAuthzPolicy) => CompiledAuthzPolicy, reason: string): CompiledAuthz => {
    const allow = allows.map(view)
    return {
      deny: bucket(enforced('DENY').map(view)),
      allow: bucket(allow),
      audit: bucket(enforced('AUDIT').map(view)),
      // An ALLOW policy whose every rule needs HTTP still applies to TCP: it allows nothing there.
      allowCount: allow.length,
      allowUsesAuth: allow.some((p) => p.rules.some((r) => r.usesAuth)),
      denyDefaultReason: reason,
      denyDefaultReasonNoJwt: `${reason}; no request principal: JWT not validated`,
      dryRun: applied.filter((p) => p.dryRun).map(view),
    }
  }
  return {
    peerAuthn: resolvePeerAuthn(set, workload),
    authzPolicyCount: applied.length,
    authzPolicies: applied.map((p) => ({ policy: p.id, action: p.action, dryRun: p.dryRun, rules: p.rules.length })),
    authz: build((p) => p, denyDefaultReason),
    authzL4: build(l4Policy, `${denyDefaultReason}; TCP connection: rules with HTTP fields do not apply`),
  }
}

/**
 * Istio's ComposePeerAuthentication: mesh (root namespace, no selector) < namespace (no selector)
 * < workload (selector, not in the root namespace); UNSET inherits from the level above; nothing
 * at all is PERMISSIVE; several at one level: the oldest wins (creationTimestamp, then name).
 */
function resolvePeerAuthn(set: CompiledPolicySet, workload: WorkloadRefInput): PeerAuthnResult {
  let mesh: PeerAuthnEntry | null = null
  let ns: PeerAuthnEntry | null = null
  let wl: PeerAuthnEntry | null = null
  const older = (a: PeerAuthnEntry, b: PeerAuthnEntry | null) => b === null || a.created < b.created || (a.created === b.created && a.name < b.name)
  for (const p of set.peerAuthn) {
    if (p.namespace !== workload.namespace && p.namespace !== set.rootNamespace) continue
    if (!selects(p.selector, workload.labels)) continue
    if (p.selector === null) {
      if (p.namespace === set.rootNamespace) {
        if (older(p, mesh)) mesh = p
      } else if (older(p, ns)) ns = p
    } else if (p.namespace !== set.rootNamespace && older(p, wl)) wl = p
  }
  let mode: MtlsMode = 'PERMISSIVE'
  let policy: string | null = null
  for (const level of [mesh, ns, wl]) {
    if (level && level.mode !== 'UNSET') {
      mode = level.mode
      policy = level.id
    }
  }
  const portLevel = new Map<number, MtlsMode>()
  if (wl) {
    for (const [port, m] of wl.portLevel) portLevel.set(port, m === 'UNSET' ? mode : m)
    if (wl.portLevel.size > 0 && policy === null) policy = wl.id
  }
  return { mode, portLevel, policy }
}

export function mtlsModeFor(wp: WorkloadPolicy, port: number): MtlsMode {
  return wp.peerAuthn.portLevel.get(port) ?? wp.peerAuthn.mode
}

// ---------------------------------------------------------------------------------------------
// evaluate()

function hits(m: ReadonlyMap<string, number | readonly number[]>, k: string | null): readonly number[] | number {
  if (k === null || m.size === 0) return EMPTY
  return m.get(k) ?? EMPTY
}

const asList = (h: number | readonly number[]): readonly number[] => (typeof h === 'number' ? [h] : h)

/** Past every rule number: keeps the merge in small integers (no Infinity, no doubles). */
const END = 0x3fffffff

/** First matching rule among `list` (rule numbers in order), or -1. */
function scan(b: Bucket, list: readonly number[], c: EvalContext): number {
  for (let i = 0; i < list.length; i++) {
    const n = list[i]!
    if (ruleMatches(b.rules[n]!, c)) return n
  }
  return -1
}

/**
 * The number of the first matching rule of a bucket in evaluation order, or -1: walks the index
 * hits (peer principal, peer namespace, path) merged with the always-tried rules, in rule order.
 */
function firstMatch(b: Bucket, c: EvalContext): number {
  if (b.rules.length === 0) return -1
  const hp = hits(b.byPrincipal, c.principal)
  const hn = hits(b.byNamespace, c.namespace)
  const hq = hits(b.byPath, c.facts.request.path)
  const w = b.always
  // the common cases: a single source of candidates needs no merge
  if (hn === EMPTY && hq === EMPTY) {
    if (typeof hp === 'number') return w.length === 0 ? (ruleMatches(b.rules[hp]!, c) ? hp : -1) : merge(b, [hp], EMPTY, EMPTY, w, c)
    if (hp.length === 0) return scan(b, w, c)
    if (w.length === 0) return scan(b, hp, c)
  }
  return merge(b, asList(hp), asList(hn), asList(hq), w, c)
}

function merge(b: Bucket, l0: readonly number[], l1: readonly number[], l2: readonly number[], l3: readonly number[], c: EvalContext): number {
  let i0 = 0
  let i1 = 0
  let i2 = 0
  let i3 = 0
  for (;;) {
    const x0 = i0 < l0.length ? l0[i0]! : END
    const x1 = i1 < l1.length ? l1[i1]! : END
    const x2 = i2 < l2.length ? l2[i2]! : END
    const x3 = i3 < l3.length ? l3[i3]! : END
    // each rule sits in exactly one list, so exactly one cursor moves
    let n: number
    if (x0 <= x1 && x0 <= x2 && x0 <= x3) {
      n = x0
      i0++
    } else if (x1 <= x2 && x1 <= x3) {
      n = x1
      i1++
    } else if (x2 <= x3) {
      n = x2
      i2++
    } else {
      n = x3
      i3++
    }
    if (n === END) return -1
    if (ruleMatches(b.rules[n]!, c)) return n
  }
}

const NO_DRY_RUN: DryRunResult[] = []
const NO_JWT = ' (no request principal: JWT not validated)'

function evalDryRun(policies: readonly CompiledAuthzPolicy[], c: EvalContext): DryRunResult[] {
  if (policies.length === 0) return NO_DRY_RUN
  return policies.map((p) => {
    const r = p.rules.find((rule) => ruleMatches(rule, c))
    return { policy: p.id, action: p.action, matched: r !== undefined, ruleIndex: r ? r.index : null }
  })
}

/**
 * Istio's order: (CUSTOM, unsupported) → DENY → ALLOW. AUDIT only records. Dry-run policies are
 * evaluated into `dryRun` and never decide. Pure and synchronous.
 */
export function evaluate(wp: WorkloadPolicy, facts: RequestFacts): Decision {
  return evaluateWith(wp.authz, facts)
}

/** What a TCP connection is judged on: who (peer, source IP), and where (destination port and IP, SNI). */
export interface ConnectionFacts {
  readonly principal: string | null
  readonly namespace: string | null
  readonly sourceIp: string
  readonly destinationPort: number
  readonly destinationIp?: string
  readonly sni?: string
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({})

/** evaluate() for a TCP connection: the L4 view of the same policies (HTTP-only ALLOW rules never match, HTTP fields of DENY rules ignored). */
export function evaluateConnection(wp: WorkloadPolicy, f: ConnectionFacts): Decision {
  return evaluateWith(wp.authzL4, {
    source: { principal: f.principal, namespace: f.namespace, ip: f.sourceIp },
    destination: { port: f.destinationPort, ...(f.destinationIp ? { ip: f.destinationIp } : {}) },
    request: { method: '', host: '', path: '', headers: NO_HEADERS, auth: null, ...(f.sni ? { sni: f.sni } : {}) },
  })
}

function evaluateWith(a: CompiledAuthz, facts: RequestFacts): Decision {
  const c = new EvalContext(facts)
  const dryRun = a.dryRun.length === 0 ? NO_DRY_RUN : evalDryRun(a.dryRun, c)
  let audit: Decision['audit'] = null
  if (a.audit.rules.length > 0) {
    const m = firstMatch(a.audit, c)
    if (m >= 0) audit = { policy: a.audit.policies[m]!.id, ruleIndex: a.audit.rules[m]!.index }
  }
  const d = firstMatch(a.deny, c)
  if (d >= 0) {
    const policy = a.deny.policies[d]!.id
    const rule = a.deny.rules[d]!
    const reason = `deny by ${policy} rules[${rule.index}]`
    return { action: 'DENY', policy, ruleIndex: rule.index, reason: rule.usesAuth && c.auth === null ? reason + NO_JWT : reason, dryRun, audit }
  }
  if (a.allowCount === 0) return { action: 'ALLOW', policy: null, ruleIndex: null, reason: 'allow: no ALLOW policy applies', dryRun, audit }
  const m = firstMatch(a.allow, c)
  if (m >= 0) {
    const policy = a.allow.policies[m]!.id
    const ruleIndex = a.allow.rules[m]!.index
    return { action: 'ALLOW', policy, ruleIndex, reason: `allow by ${policy} rules[${ruleIndex}]`, dryRun, audit }
  }
  return {
    action: 'DENY',
    policy: null,
    ruleIndex: null,
    reason: a.allowUsesAuth && c.auth === null ? a.denyDefaultReasonNoJwt : a.denyDefaultReason,
    dryRun,
    audit,
  }
}

// ---------------------------------------------------------------------------------------------
// explain(): the slow path for `remora check` and debugging, policy by policy, rule by rule.

export interface RuleExplanation {
  readonly index: number
  readonly matched: boolean
  /** Why it did not match (`rules[0].from[0].source.principals did not match "spiffe://…"`). */
  readonly mismatch: string | null
}

export interface PolicyExplanation {
  readonly policy: string
  readonly action: AuthzAction
  readonly dryRun: boolean
  readonly matched: boolean
  readonly ruleIndex: number | null
  readonly rules: readonly RuleExplanation[]
  /** One line: "matched rules[1]", "no rules: matches nothing", "rules[0]: …; rules[1]: …". */
  readonly summary: string
}

export interface Explanation {
  readonly decision: Decision
  readonly policies: readonly PolicyExplanation[]
}

export function explain(wp: WorkloadPolicy, facts: RequestFacts): Explanation {
  const decision = evaluate(wp, facts)
  const c = new EvalContext(facts)
  const seen = new Map<string, CompiledAuthzPolicy>()
  for (const b of [wp.authz.deny, wp.authz.allow, wp.authz.audit]) for (const p of b.policies) seen.set(p.id, p)
  for (const p of wp.authz.dryRun) seen.set(p.id, p)
  const order = wp.authzPolicies.map((p) => p.policy)
  const policies = order.map((id): PolicyExplanation => {
    const p = seen.get(id)
    if (!p) {
      // an applied policy with no rules never reached a bucket
      const ap = wp.authzPolicies.find((x) => x.policy === id)!
      return { policy: id, action: ap.action, dryRun: ap.dryRun, matched: false, ruleIndex: null, rules: [], summary: 'no rules: matches nothing' }
    }
    const rules = p.rules.map((r): RuleExplanation => {
      const mismatch = ruleMismatch(r, c)
      return { index: r.index, matched: mismatch === null, mismatch }
    })
    const first = rules.find((r) => r.matched)
    const noJwt = c.auth === null && p.rules.some((r) => r.usesAuth) ? ' (no request principal: JWT not validated)' : ''
    const summary = first
      ? `matched rules[${first.index}]`
      : rules.length === 0
        ? 'no rules: matches nothing'
        : rules.map((r) => r.mismatch).join('; ') + noJwt
    return { policy: id, action: p.action, dryRun: p.dryRun, matched: !!first, ruleIndex: first ? first.index : null, rules, summary }
  })
  return { decision, policies }
}
