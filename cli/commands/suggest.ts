// `remora suggest -n NS [--for WORKLOAD] [--since 24h] [--dry-run-first]`: least-privilege
// AuthorizationPolicies from the traffic record: one ALLOW policy per destination workload that
// allows exactly the requests and connections observed as allowed (and none of those observed as
// denied), at the tightest level the record supports, with the evidence as YAML comments. The YAML
// goes to stdout (valid for `remora validate`, checked before it is printed); what it would add to
// or replace among the policies in force goes to stderr.
import { parseArgs } from 'node:util'
import { Document } from 'yaml'
import type { ObservedEdge } from '../../control-plane/replay/index.js'
import { compile, formatPolicyIssue, selectForWorkload, validateDocuments, type AuthorizationPolicy, type Operation, type PolicyDocument, type Rule } from '../../proxy/policy/index.js'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, AdminUsageError, apiFailure, callApi, fetchTraffic, isApiReply, parseSince, resolveTarget } from '../admin-client.js'
import { isUsageError } from '../errors.js'
import { printable } from './graph.js'

const USAGE = `usage: remora suggest -n NAMESPACE [--for WORKLOAD] [--since 24h] [--dry-run-first] [--root-namespace remora-system]
                      [--server URL --token T --ca FILE]

Prints AuthorizationPolicies (security.istio.io/v1) that allow exactly the traffic the sidecars
recorded as allowed into each workload of NAMESPACE (or only WORKLOAD): one ALLOW policy per
workload, selected by its app label, with a rule per caller: its exact principal, and for HTTP and
gRPC the methods, path templates ({id} → {*}) and ports it used; for TCP the ports alone. Traffic
recorded as denied is left out (and listed). The evidence (counts, last seen) is in YAML comments.
The YAML goes to stdout; stderr says which policies in force it would add to or replace.
--dry-run-first annotates each policy istio.io/dry-run: "true" (evaluated and logged, not enforced).
Exit 0, 1 when the control plane cannot be read or nothing was recorded, 2 bad usage.

${ADMIN_FLAGS_HELP}`

/** An app label value (Kubernetes label value syntax): what a selector can name. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

export interface SuggestOptions {
  readonly namespace: string
  readonly workload?: string
  readonly dryRunFirst?: boolean
  readonly window: { readonly from: number; readonly to: number }
}

export interface Suggestion {
  readonly workload: string
  readonly policy: AuthorizationPolicy
  /** The YAML with its evidence comments. */
  readonly yaml: string
  /** Denied traffic the rules also match (the record cannot tell it apart: a JWT, a header…). */
  readonly overlaps: readonly string[]
  /** Observed allowed paths the policy can only allow more widely (a truncated or unexpressible template). */
  readonly widened: readonly string[]
}

export interface SuggestResult {
  readonly suggestions: readonly Suggestion[]
  /** Workloads left out, and why (a name no selector can hold). */
  readonly skipped: readonly string[]
}

/** The policy name for a workload: `<workload>-observed`, cut to a valid name. */
export function suggestedName(workload: string): string {
  const base = workload.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 244) || 'workload'
  return `${base.replace(/-+$/, '')}-observed`
}

/** The principal as Istio writes it (no scheme). */
const istioPrincipal = (spiffe: string): string => spiffe.replace(/^spiffe:\/\//, '')

/**
 * A path template of the record as a policy path: `{id}` segments become Istio's one-segment
 * template `{*}` (a {id} segment was one non-empty segment). A template a policy cannot hold
 * exactly (truncated, or with `*`, `{` or `}` of its own) is widened to the prefix before its
 * first such segment, as `prefix*`.
 */
export function policyPath(template: string): { path: string; widened: boolean } | null {
  // A request path the sidecar would have refused (control characters, `?`/`#`, spaces) is no path a policy can hold.
  // eslint-disable-next-line no-control-regex
  if (!template.startsWith('/') || /[?#\s\u0000-\u001f\u007f]/.test(template)) return null
  const truncated = template.endsWith('...')
  const segs = (truncated ? template.slice(0, -3) : template).split('/')
  const literal = (s: string): boolean => !/[*{}]/.test(s)
  const cut = segs.findIndex((s, i) => i > 0 && (s === '{id}' || !literal(s)))
  if (cut === -1 && !truncated) return { path: template, widened: false }
  if (!truncated && segs.every((s) => s === '{id}' || literal(s))) return { path: segs.map((s) => (s === '{id}' ? '{*}' : s)).join('/'), widened: false }
  // A truncated template keeps its last (cut) segment in the prefix: the prefix covers what followed.
  return { path: cut === -1 ? `${segs.join('/')}*` : `${segs.slice(0, cut).join('/')}/*`, widened: true }
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
const callerName = (source: string): string => (source === '' ? 'plaintext callers (no mTLS identity)' : printable(source))
const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`

interface PathUse {
  count: number
  lastSeen: number
  methods: Set<string>
  ports: Set<number>
}

/** The rules of one workload's policy and their evidence, from its allowed edges. */
function rulesFor(allowed: readonly ObservedEdge[]): { rules: Rule[]; comments: { rule: string; ops: string[][] }[]; covers: (e: ObservedEdge) => boolean; widened: string[] } {
  const bySource = new Map<string, ObservedEdge[]>()
  for (const e of allowed) bySource.set(e.source, [...(bySource.get(e.source) ?? []), e])
  const rules: Rule[] = []
  const comments: { rule: string; ops: string[][] }[] = []
  const widened: string[] = []
  // What the rules allow, as the same keys the record has: a denied edge with one of them overlaps.
  const allowedKeys = new Set<string>()
  const key = (e: Pick<ObservedEdge, 'source' | 'protocol' | 'method' | 'path' | 'port'>): string => [e.source, e.protocol === 'tcp' ? 'tcp' : 'http', e.method, e.path, e.port].join('\u0000')
  for (const source of [...bySource.keys()].sort()) {
    const edges = bySource.get(source)!
    const from = source === '' ? [{ source: { notPrincipals: ['*'] } }] : [{ source: { principals: [istioPrincipal(source)] } }]
    const who = callerName(source)
    const http = edges.filter((e) => e.protocol !== 'tcp')
    const tcp = edges.filter((e) => e.protocol === 'tcp')
    if (http.length > 0) {
      // One to[] entry per (ports, methods) pair: within an entry every method goes with every path,
      // so grouping the paths that share both keeps the rule exactly as wide as what was observed.
      const paths = new Map<string, PathUse & { templates: Set<string> }>()
      for (const e of http) {
        const p = policyPath(e.path)
        if (p === null) {
          widened.push(`${who} ${e.method} ${printable(e.path)}: not a path a policy can hold, left out`)
          continue
        }
        if (p.widened) widened.push(`${who} ${e.method} ${printable(e.path)} → ${p.path}`)
        const u = paths.get(p.path) ?? { count: 0, lastSeen: 0, methods: new Set(), ports: new Set(), templates: new Set() }
        u.count += e.count
        u.lastSeen = Math.max(u.lastSeen, e.lastSeen)
        u.methods.add(e.method)
        u.ports.add(e.port)
        u.templates.add(e.path)
        paths.set(p.path, u)
        allowedKeys.add(key(e))
      }
      const groups = new Map<string, { methods: string[]; ports: string[]; paths: string[]; evidence: string[] }>()
      for (const [path, u] of [...paths].sort(([a], [b]) => a.localeCompare(b))) {
        const methods = [...u.methods].sort()
        const ports = [...u.ports].sort((a, b) => a - b).map(String)
        const gk = `${ports.join(',')}|${methods.join(',')}`
        const g = groups.get(gk) ?? { methods, ports, paths: [], evidence: [] }
        g.paths.push(path)
        g.evidence.push(` ${methods.join(',')} ${printable([...u.templates].join(', '))}: ${plural(u.count, 'request')}, last seen ${iso(u.lastSeen)}`)
        groups.set(gk, g)
      }
      const to = [...groups.values()].map((g) => ({ operation: { ports: g.ports, methods: g.methods, paths: g.paths } satisfies Operation }))
      const n = http.reduce((a, e) => a + e.count, 0)
      if (to.length > 0) rules.push({ from, to })
      if (to.length > 0) comments.push({ rule: ` ${who}: ${plural(n, 'request')} (HTTP), last seen ${iso(Math.max(...http.map((e) => e.lastSeen)))}`, ops: [...groups.values()].map((g) => g.evidence) })
    }
    if (tcp.length > 0) {
      // HTTP fields never match a connection (Istio's L4 semantics): a TCP rule has ports alone.
      const ports = [...new Set(tcp.map((e) => e.port))].sort((a, b) => a - b)
      rules.push({ from, to: [{ operation: { ports: ports.map(String) } }] })
      const n = tcp.reduce((a, e) => a + e.count, 0)
      const evidence = ports.map((p) => {
        const on = tcp.filter((e) => e.port === p)
        return ` TCP port ${p}: ${plural(on.reduce((a, e) => a + e.count, 0), 'connection')}, last seen ${iso(Math.max(...on.map((e) => e.lastSeen)))}`
      })
      comments.push({ rule: ` ${who}: ${plural(n, 'connection')} (TCP), last seen ${iso(Math.max(...tcp.map((e) => e.lastSeen)))}`, ops: [evidence] })
      for (const e of tcp) allowedKeys.add(key(e))
    }
  }
  return { rules, comments, covers: (e) => allowedKeys.has(key(e)), widened }
}

/** The suggestions for a namespace (or one workload of it). Pure. */
export function suggestPolicies(edges: readonly ObservedEdge[], o: SuggestOptions): SuggestResult {
  const into = edges.filter((e) => e.destination.namespace === o.namespace && (o.workload === undefined || e.destination.workload === o.workload))
  const workloads = [...new Set(into.map((e) => e.destination.workload))].sort()
  const suggestions: Suggestion[] = []
  const skipped: string[] = []
  for (const workload of workloads) {
    if (!LABEL_VALUE.test(workload) || workload.length > 63) {
      skipped.push(`${printable(workload)}: not a label value, so no selector can name it`)
      continue
    }
    const mine = into.filter((e) => e.destination.workload === workload)
    const allowed = mine.filter((e) => e.decision === 'ALLOW')
    const denied = mine.filter((e) => e.decision === 'DENY')
    const { rules, comments, covers, widened } = rulesFor(allowed)
    const name = suggestedName(workload)
    const policy: AuthorizationPolicy = {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name, namespace: o.namespace, ...(o.dryRunFirst ? { annotations: { 'istio.io/dry-run': 'true' } } : {}) },
      spec: { selector: { matchLabels: { app: workload } }, action: 'ALLOW', ...(rules.length > 0 ? { rules } : {}) },
    }
    const doc = new Document(policy)
    const requests = allowed.reduce((a, e) => a + e.count, 0)
    doc.commentBefore = [
      ` ${o.namespace}/${workload}: allows exactly the traffic recorded as allowed ${iso(o.window.from)} → ${iso(o.window.to)}`,
      rules.length > 0 ? ` (${requests} ${requests === 1 ? 'request or connection' : 'requests and connections'} from ${plural(new Set(allowed.map((e) => e.source)).size, 'caller')}).` : ' No allowed traffic was recorded: this policy denies every request to the workload.',
      ' Assumes the workload is selected by its app label (app: <workload name in the record>).',
      ...(o.dryRunFirst ? [' istio.io/dry-run: evaluated and logged by the sidecars, not enforced; remove the annotation to enforce.'] : []),
    ].join('\n')
    for (const [i, c] of comments.entries()) {
      const ruleNode = doc.getIn(['spec', 'rules', i], true) as { commentBefore?: string } | undefined
      if (ruleNode) ruleNode.commentBefore = c.rule
      for (const [j, ev] of c.ops.entries()) {
        const opNode = doc.getIn(['spec', 'rules', i, 'to', j], true) as { commentBefore?: string } | undefined
        if (opNode) opNode.commentBefore = ev.join('\n')
      }
    }
    const overlaps = denied.filter(covers).map((e) => `${callerName(e.source)} ${e.method} ${printable(e.path)} (port ${e.port}) was also denied ${plural(e.count, 'time')}: ${printable(e.denials[0]?.reason ?? 'no reason recorded')}`)
    const left = denied.filter((e) => !covers(e))
    const trailer = [
      ...left.map((e) => ` denied and left out: ${callerName(e.source)} ${e.protocol === 'tcp' ? `TCP port ${e.port}` : `${e.method} ${printable(e.path)}`}: ${plural(e.count, 'request')}, last seen ${iso(e.lastSeen)}${e.denials[0] ? ` (${printable(e.denials[0].reason)})` : ''}`),
      ...overlaps.map((s) => ` REVIEW: ${s}. The record cannot tell these requests apart from the allowed ones (a JWT, a header); keep the condition that denied them.`),
      ...widened.map((s) => ` widened: ${s} (the recorded template cannot be written exactly).`),
    ]
    if (trailer.length > 0) doc.comment = trailer.join('\n')
    suggestions.push({ workload, policy, yaml: doc.toString({ lineWidth: 0 }), overlaps, widened })
  }
  return { suggestions, skipped }
}

/** The policies in force that apply to a workload (AuthorizationPolicies only), as `ns/name` with their action. */
export function inForceFor(inForce: readonly PolicyDocument[], namespace: string, workload: string, rootNamespace: string): { policy: string; action: string; dryRun: boolean }[] {
  const wp = selectForWorkload(compile(inForce, { rootNamespace }), { namespace, labels: { app: workload } })
  return wp.authzPolicies.map((p) => ({ policy: p.policy, action: p.action, dryRun: p.dryRun }))
}

/** The diff against the policies in force: what each suggestion adds or replaces, and what stays beside it. */
export function diffLines(s: SuggestResult, inForce: readonly PolicyDocument[], edges: readonly ObservedEdge[], o: { namespace: string; rootNamespace: string }): string[] {
  const lines: string[] = []
  const used = new Set(edges.filter((e) => e.policy !== null && e.rule !== null).map((e) => `${e.policy}#${e.rule}`))
  for (const sg of s.suggestions) {
    const id = `${o.namespace}/${sg.policy.metadata.name}`
    const same = inForce.find((d) => d.kind === 'AuthorizationPolicy' && `${d.metadata.namespace}/${d.metadata.name}` === id) as AuthorizationPolicy | undefined
    const n = sg.policy.spec.rules?.length ?? 0
    lines.push(same ? `replaces ${id} (${plural(same.spec.rules?.length ?? 0, 'rule')} → ${plural(n, 'rule')})` : `adds ${id} (${plural(n, 'rule')}) for ${o.namespace}/${printable(sg.workload)}`)
    for (const p of inForceFor(inForce, o.namespace, sg.workload, o.rootNamespace)) {
      if (p.policy === id) continue
      const doc = inForce.find((d) => `${d.metadata.namespace}/${d.metadata.name}` === p.policy) as AuthorizationPolicy | undefined
      const rules = doc?.spec.rules ?? []
      const unused = rules.map((_r, i) => i).filter((i) => !used.has(`${p.policy}#${i}`))
      const note =
        p.action === 'ALLOW' && !p.dryRun
          ? `ALLOW policies add up: delete it after applying for least privilege${unused.length ? `; rules[${unused.join('], rules[')}] matched no recorded request` : ''}`
          : p.action === 'DENY'
            ? 'DENY: stays in force and still decides first'
            : `${p.action}${p.dryRun ? ' (dry run)' : ''}: no effect on the decision`
      lines.push(`  beside it, in force for ${printable(sg.workload)}: ${p.policy} (${note})`)
    }
    for (const ov of sg.overlaps) lines.push(`  review: ${ov}`)
    for (const w of sg.widened) lines.push(`  widened: ${w}`)
  }
  for (const sk of s.skipped) lines.push(`skipped ${sk}`)
  return lines
}

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        namespace: { type: 'string', short: 'n' },
        for: { type: 'string' },
        since: { type: 'string' },
        'dry-run-first': { type: 'boolean' },
        'root-namespace': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...ADMIN_FLAGS,
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora suggest: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const namespace = values.namespace
    if (!namespace) throw new AdminUsageError('-n NAMESPACE is required')
    if (!DNS_NAME.test(namespace)) throw new AdminUsageError(`-n: "${namespace}" is not a namespace name`)
    const since = parseSince(values.since)
    const t = resolveTarget(values)
    const traffic = await fetchTraffic(t, { namespace, workload: values.for, since })
    if (isApiReply(traffic)) return apiFailure('suggest', traffic)
    const sources = await callApi(t, 'GET', '/v1/sources')
    if (sources.status !== 200) return apiFailure('suggest', sources)
    const rootNamespace = values['root-namespace'] ?? String(sources.json.rootNamespace ?? 'remora-system')
    const inForce = validateDocuments(sources.json.sources as { source: string; text: string }[], { rootNamespace }).policies
    const result = suggestPolicies(traffic.edges, { namespace, workload: values.for, dryRunFirst: values['dry-run-first'] === true, window: traffic.window })
    if (result.suggestions.length === 0) {
      for (const sk of result.skipped) console.error(`remora suggest: skipped ${sk}`)
      console.error(`remora suggest: no traffic into ${namespace}${values.for ? `/${values.for}` : ''} was recorded in the last ${since}: nothing to suggest`)
      return 1
    }
    const yaml = result.suggestions.map((s) => s.yaml).join('---\n')
    // Never print what `remora validate` would refuse.
    const check = validateDocuments([{ source: 'suggestion', text: yaml }], { trustDomains: [String(sources.json.trustDomain ?? 'cluster.local')], rootNamespace })
    if (check.errors.length > 0) {
      for (const e of check.errors) console.error(formatPolicyIssue(e))
      throw new Error('internal error: the suggestion does not validate (nothing printed)')
    }
    process.stdout.write(yaml)
    for (const l of diffLines(result, inForce, traffic.edges, { namespace, rootNamespace })) console.error(l)
    console.error(`review, then: remora apply --preview -f <file> (what changes for the recorded traffic), and remora apply -f <file>`)
    return 0
  } catch (err) {
    console.error(`remora suggest: ${(err as Error).message}`)
    return isUsageError(err) ? 2 : 1
  }
}
