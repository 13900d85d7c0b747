// `remora suggest`'s generator: from the traffic record to least-privilege AuthorizationPolicies
// that validate, allow exactly the recorded allowed traffic (replayed with the sidecar's own
// evaluate) and nothing else, with the evidence as comments.
import { describe, expect, test } from 'vitest'
import { parse } from 'yaml'
import { diffLines, policyPath, suggestPolicies, suggestedName } from '../../../cli/commands/suggest.js'
import { replay, withCandidate, type ObservedEdge } from '../../../control-plane/replay/index.js'
import { validateDocuments, type PolicyDocument } from '../../../proxy/policy/index.js'
import { DEMO_POLICIES, T0, demoEdges, observed, spiffe } from '../../helpers/traffic.js'

const WINDOW = { from: T0, to: T0 + 86_400_000 }
const ROOT = { rootNamespace: 'remora-system' }

function validated(yaml: string): PolicyDocument[] {
  const r = validateDocuments([{ source: 'suggested.yaml', text: yaml }], { trustDomains: ['cluster.local'] })
  expect(r.errors).toEqual([])
  expect(r.warnings).toEqual([])
  return r.policies
}

const all = (edges: ObservedEdge[], o: Partial<Parameters<typeof suggestPolicies>[1]> = {}) => suggestPolicies(edges, { namespace: 'shop', window: WINDOW, ...o })
const yamlOf = (r: ReturnType<typeof suggestPolicies>): string => r.suggestions.map((s) => s.yaml).join('---\n')

describe('suggest', () => {
  test('one ALLOW policy per destination workload, selected by its app label, valid for remora validate', () => {
    const r = all(demoEdges())
    expect(r.suggestions.map((s) => s.workload)).toEqual(['frontend', 'orders', 'payments'])
    const docs = validated(yamlOf(r))
    expect(docs.map((d) => [d.apiVersion, d.kind, d.metadata.namespace, d.metadata.name])).toEqual([
      ['security.istio.io/v1', 'AuthorizationPolicy', 'shop', 'frontend-observed'],
      ['security.istio.io/v1', 'AuthorizationPolicy', 'shop', 'orders-observed'],
      ['security.istio.io/v1', 'AuthorizationPolicy', 'shop', 'payments-observed'],
    ])
    for (const d of docs) expect(d.spec).toMatchObject({ action: 'ALLOW', selector: { matchLabels: { app: d.metadata.name.replace(/-observed$/, '') } } })
  })

  test('the tightest rules the record supports: exact principal; methods, {*} templates and ports per group; TCP by ports alone; plaintext as notPrincipals *', () => {
    const spec = (w: string) => all(demoEdges()).suggestions.find((s) => s.workload === w)!.policy.spec
    expect(spec('orders').rules).toEqual([
      {
        from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }],
        to: [
          { operation: { ports: ['8080'], methods: ['GET', 'POST'], paths: ['/orders'] } },
          { operation: { ports: ['8080'], methods: ['GET'], paths: ['/orders/{*}'] } },
        ],
      },
    ])
    expect(spec('payments').rules).toEqual([
      { from: [{ source: { principals: ['cluster.local/ns/shop/sa/orders'] } }], to: [{ operation: { ports: ['8080'], methods: ['POST'], paths: ['/charge'] } }] },
      { from: [{ source: { principals: ['cluster.local/ns/shop/sa/orders'] } }], to: [{ operation: { ports: ['5432'] } }] },
    ])
    expect(spec('frontend').rules).toEqual([{ from: [{ source: { notPrincipals: ['*'] } }], to: [{ operation: { ports: ['8080'], methods: ['GET'], paths: ['/'] } }] }])
  })

  test('applied in place of the ALLOW policies in force, it allows every recorded allowed edge, denies every recorded denied one, and denies new edges', () => {
    const edges = demoEdges()
    const suggested = validated(yamlOf(all(edges)))
    // The demo's own ALLOW policies are what suggest replaces (diffLines says to delete them).
    const decided = replay(edges, suggested, ROOT)
    for (const d of decided) expect(d.decision.action, `${d.source} ${d.method} ${d.path} → ${d.destination.workload}`).toBe(d.recorded.allow > 0 ? 'ALLOW' : 'DENY')
    const fresh = [
      observed({ namespace: 'shop', workload: 'orders' }, { source: spiffe('shop', 'frontend'), method: 'DELETE', path: '/orders/{id}' }),
      observed({ namespace: 'shop', workload: 'orders' }, { source: spiffe('shop', 'frontend'), method: 'POST', path: '/orders/{id}' }),
      observed({ namespace: 'shop', workload: 'orders' }, { source: spiffe('shop', 'frontend'), method: 'GET', path: '/orders', port: 9090 }),
      observed({ namespace: 'shop', workload: 'orders' }, { source: spiffe('shop', 'payments'), method: 'GET', path: '/orders' }),
      observed({ namespace: 'shop', workload: 'payments' }, { source: spiffe('shop', 'orders'), method: '', path: '', port: 6379, protocol: 'tcp' }),
      observed({ namespace: 'shop', workload: 'payments' }, { source: spiffe('shop', 'frontend'), method: '', path: '', port: 5432, protocol: 'tcp' }),
      observed({ namespace: 'shop', workload: 'frontend' }, { source: spiffe('shop', 'orders'), method: 'GET', path: '/' }),
    ]
    for (const d of replay(fresh, suggested, ROOT)) expect(d.decision.action, `${d.source} ${d.method} ${d.path}:${d.port} → ${d.destination.workload}`).toBe('DENY')
    // Beside the demo's policies (not replacing them) it takes nothing away from what is allowed now.
    for (const d of replay(edges, withCandidate(validated(DEMO_POLICIES), suggested), ROOT)) expect(d.decision.action).toBe(d.recorded.allow > 0 ? 'ALLOW' : 'DENY')
  })

  test('the evidence is in comments: counts and last seen per caller and per path, denied traffic listed as left out', () => {
    const y = all(demoEdges()).suggestions.find((s) => s.workload === 'orders')!.yaml
    expect(y).toMatch(/^# shop\/orders: allows exactly the traffic recorded as allowed 2025-01-15T09:00:00Z → 2025-01-16T09:00:00Z/)
    expect(y).toContain('# spiffe://cluster.local/ns/shop/sa/frontend: 540 requests (HTTP), last seen 2025-01-15T10:00:00Z')
    expect(y).toContain('# GET,POST /orders: 340 requests, last seen 2025-01-15T10:00:00Z')
    expect(y).toContain('# GET /orders/{id}: 200 requests')
    expect(y).toContain('# denied and left out: spiffe://cluster.local/ns/batch/sa/reporter DELETE /orders/{id}: 3 requests')
    expect(parse(y)).toMatchObject({ kind: 'AuthorizationPolicy' })
  })

  test('--dry-run-first: each policy carries istio.io/dry-run "true", which remora honours', () => {
    const docs = validated(yamlOf(all(demoEdges(), { dryRunFirst: true })))
    for (const d of docs) expect(d.metadata.annotations).toEqual({ 'istio.io/dry-run': 'true' })
    // Dry run: evaluated, not enforced, so the recorded denied edge to orders is still allowed by default.
    const batch = replay(demoEdges(), docs, ROOT).find((d) => d.source.includes('/ns/batch/'))!
    expect(batch.decision.action).toBe('ALLOW')
  })

  test('--for keeps one workload; a workload with only denied traffic gets a policy that allows nothing', () => {
    expect(all(demoEdges(), { workload: 'payments' }).suggestions.map((s) => s.workload)).toEqual(['payments'])
    const only = all([observed({ namespace: 'shop', workload: 'vault' }, { source: spiffe('shop', 'x'), decision: 'DENY' })])
    const [doc] = validated(yamlOf(only))
    expect(doc!.spec).toEqual({ selector: { matchLabels: { app: 'vault' } }, action: 'ALLOW' })
    expect(only.suggestions[0]!.yaml).toContain('this policy denies every request')
  })

  test('denied traffic the rules cannot tell apart from allowed traffic is flagged for review', () => {
    const to = { namespace: 'shop', workload: 'orders' }
    const r = all([
      observed(to, { source: spiffe('shop', 'frontend'), path: '/orders', count: 5 }),
      observed(to, { source: spiffe('shop', 'frontend'), path: '/orders', count: 2, decision: 'DENY', denials: [{ at: T0, reason: 'deny: no ALLOW policy matched (1 applied: shop/jwt); no request principal: JWT not validated' }] }),
    ])
    expect(r.suggestions[0]!.overlaps).toEqual([expect.stringMatching(/GET \/orders \(port 8080\) was also denied 2 times: deny: no ALLOW policy matched .*JWT not validated/)])
    expect(r.suggestions[0]!.yaml).toContain('# REVIEW:')
  })

  test('strings from the record are data: markup in a path stays a literal path, control characters never reach the YAML', () => {
    const to = { namespace: 'shop', workload: 'orders' }
    const markup = '/a/<script>alert(1)</script>'
    const [doc] = validated(yamlOf(all([observed(to, { source: spiffe('shop', 'frontend'), path: markup })])))
    expect((doc!.spec as { rules: { to: { operation: { paths: string[] } }[] }[] }).rules[0]!.to[0]!.operation.paths).toEqual([markup])
    const forged = all([observed(to, { source: spiffe('shop', 'frontend'), path: '/a\u001b[2J\n# forged' }), observed(to, { source: spiffe('shop', 'frontend'), path: '/ok' })])
    const y = yamlOf(forged)
    expect(y).not.toContain('\u001b')
    expect(y.split('\n').filter((l) => l.startsWith('# forged'))).toEqual([])
    expect(forged.suggestions[0]!.widened).toEqual([expect.stringContaining('not a path a policy can hold, left out')])
    const [d2] = validated(y)
    expect((d2!.spec as { rules: { to: { operation: { paths: string[] } }[] }[] }).rules[0]!.to[0]!.operation.paths).toEqual(['/ok'])
  })
})

describe('paths and names', () => {
  test('{id} segments become {*}; what a policy cannot hold exactly is widened to a prefix', () => {
    expect(policyPath('/orders/{id}/items')).toEqual({ path: '/orders/{*}/items', widened: false })
    expect(policyPath('/orders')).toEqual({ path: '/orders', widened: false })
    expect(policyPath('/a/b*c/d')).toEqual({ path: '/a/*', widened: true })
    expect(policyPath('/a/{id}/{x}')).toEqual({ path: '/a/*', widened: true })
    expect(policyPath(`/x/${'a'.repeat(250)}...`)).toEqual({ path: `/x/${'a'.repeat(250)}*`, widened: true })
    expect(policyPath('')).toBeNull()
    expect(policyPath('/a?b')).toBeNull()
  })

  test('the policy name is <workload>-observed, a valid name', () => {
    expect(suggestedName('orders')).toBe('orders-observed')
    expect(suggestedName('Orders_V2')).toBe('orders-v2-observed')
  })
})

describe('diff against the policies in force', () => {
  test('adds beside the ALLOW policies in force, says to delete them, and names their unused rules', () => {
    const edges = demoEdges()
    const lines = diffLines(all(edges), validateDocuments([{ source: 'x', text: DEMO_POLICIES }]).policies, edges, { namespace: 'shop', rootNamespace: 'remora-system' })
    expect(lines).toContain('adds shop/orders-observed (1 rule) for shop/orders')
    expect(lines).toContain('  beside it, in force for orders: shop/orders-allow-frontend (ALLOW policies add up: delete it after applying for least privilege)')
    expect(lines).toContain('adds shop/payments-observed (2 rules) for shop/payments')
  })

  test('a policy in force with the same name is replaced', () => {
    const edges = demoEdges()
    const inForce = validateDocuments([{ source: 'x', text: DEMO_POLICIES.replace('name: orders-allow-frontend', 'name: orders-observed') }]).policies
    const lines = diffLines(all(edges, { workload: 'orders' }), inForce, edges, { namespace: 'shop', rootNamespace: 'remora-system' })
    expect(lines).toEqual(['replaces shop/orders-observed (1 rule → 1 rule)'])
  })

  test('an ALLOW rule no recorded request used is named', () => {
    const edges = demoEdges()
    const extra = DEMO_POLICIES.replace('      to: [{ operation: { methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] } }]', '      to: [{ operation: { methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] } }]\n    - from: [{ source: { namespaces: ["batch"] } }]')
    const lines = diffLines(all(edges, { workload: 'orders' }), validateDocuments([{ source: 'x', text: extra }]).policies, edges, { namespace: 'shop', rootNamespace: 'remora-system' })
    expect(lines[1]).toMatch(/rules\[1\] matched no recorded request/)
  })
})
