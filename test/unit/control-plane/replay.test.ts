// The replay of the traffic record (control-plane/replay): recorded edges decided by a policy set
// with the same compile → selectForWorkload → evaluate(Connection) path the sidecar runs.
import { describe, expect, test } from 'vitest'
import { concretePath, edgeRequestFacts, previewChanges, replay, withCandidate } from '../../../control-plane/replay/index.js'
import { validateDocuments, type PolicyDocument } from '../../../proxy/policy/index.js'
import { DEMO_POLICIES, demoEdges, observed, spiffe } from '../../helpers/traffic.js'

const ROOT = { rootNamespace: 'remora-system' }

function docs(text: string): PolicyDocument[] {
  const r = validateDocuments([{ source: 'test.yaml', text }])
  expect(r.errors).toEqual([])
  return r.policies
}

describe('edge → facts', () => {
  test('an HTTP edge becomes the verified caller, its namespace, method, path and port', () => {
    const e = observed({ namespace: 'shop', workload: 'orders' }, { source: spiffe('web', 'frontend'), method: 'POST', path: '/orders', port: 9090 })
    const { facts, approximate } = edgeRequestFacts(e)
    expect(facts.source).toEqual({ principal: 'spiffe://cluster.local/ns/web/sa/frontend', namespace: 'web', ip: '0.0.0.0' })
    expect(facts.destination).toEqual({ port: 9090 })
    expect(facts.request).toMatchObject({ method: 'POST', path: '/orders', host: 'orders.shop', auth: null })
    expect(approximate).toBe(false)
  })

  test('a plaintext caller has no principal and no namespace', () => {
    const { facts } = edgeRequestFacts(observed({ namespace: 'shop', workload: 'frontend' }, { source: '' }))
    expect(facts.source.principal).toBeNull()
    expect(facts.source.namespace).toBeNull()
  })

  test('a {id} template is evaluated with a representative value and marked approximate; a plain path is exact', () => {
    expect(concretePath('/orders/{id}/items/{id}')).toEqual({ path: '/orders/0/items/0', approximate: true })
    expect(concretePath('/orders/items')).toEqual({ path: '/orders/items', approximate: false })
    expect(concretePath(`/${'a'.repeat(252)}...`).approximate).toBe(true)
  })
})

describe('replay', () => {
  test('the demo record replayed against the policies that made it gives the recorded decisions', () => {
    const out = replay(demoEdges(), docs(DEMO_POLICIES), ROOT)
    expect(out).toHaveLength(8)
    for (const r of out) expect(r.decision.action, `${r.source} ${r.method} ${r.path}`).toBe(r.recorded.allow > 0 ? 'ALLOW' : 'DENY')
    const tcp = out.find((r) => r.protocol === 'tcp')!
    expect(tcp.decision).toMatchObject({ action: 'ALLOW', policy: 'shop/payments-allow-orders', rule: 1 })
    const batch = out.find((r) => r.source.includes('/ns/batch/'))!
    expect(batch.decision.reason).toBe('deny: no ALLOW policy matched (1 applied: shop/orders-allow-frontend)')
  })

  test('a TCP edge is decided as a connection: an ALLOW rule with HTTP fields never matches it', () => {
    const tcp = observed({ namespace: 'shop', workload: 'db' }, { source: spiffe('shop', 'orders'), method: '', path: '', port: 5432, protocol: 'tcp' })
    const http = docs(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: db, namespace: shop }
spec:
  selector: { matchLabels: { app: db } }
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }], to: [{ operation: { methods: ["GET"] } }] }]
`)
    expect(replay([tcp], http, ROOT)[0]!.decision.action).toBe('DENY')
    const ports = docs(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: db, namespace: shop }
spec:
  selector: { matchLabels: { app: db } }
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }], to: [{ operation: { ports: ["5432"] } }] }]
`)
    expect(replay([tcp], ports, ROOT)[0]!.decision).toMatchObject({ action: 'ALLOW', policy: 'shop/db', rule: 0 })
  })

  test('edges a replay cannot tell apart (allowed and denied copies of one request) are one group with both counts', () => {
    const to = { namespace: 'shop', workload: 'orders' }
    const a = observed(to, { source: spiffe('shop', 'frontend'), path: '/orders', count: 5, policy: 'shop/x', rule: 0 })
    const d = observed(to, { source: spiffe('shop', 'frontend'), path: '/orders', count: 2, decision: 'DENY', lastSeen: a.lastSeen + 10 })
    const [g, ...rest] = replay([a, d], [], ROOT)
    expect(rest).toEqual([])
    expect(g).toMatchObject({ count: 7, recorded: { allow: 5, deny: 2 }, lastSeen: a.lastSeen + 10 })
  })

  test('labelsOf decides which policies apply (the workload is not its app label)', () => {
    const e = observed({ namespace: 'shop', workload: 'orders-v2' }, { source: spiffe('shop', 'frontend'), path: '/x' })
    const p = docs(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: none, namespace: shop }
spec: { selector: { matchLabels: { app: orders } } }
`)
    expect(replay([e], p, ROOT)[0]!.decision.action).toBe('ALLOW')
    expect(replay([e], p, { ...ROOT, labelsOf: () => ({ app: 'orders' }) })[0]!.decision.action).toBe('DENY')
  })
})

describe('preview', () => {
  const cut = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/orders", "/orders/*"] } }]
`

  test('a candidate with the same name replaces the policy in force; another name adds to it', () => {
    const inForce = docs(DEMO_POLICIES)
    const cand = docs(cut)
    expect(withCandidate(inForce, cand).map((d) => d.metadata.name).sort()).toEqual(['orders-allow-frontend', 'payments-allow-orders'])
    expect(withCandidate(inForce, cand).find((d) => d.metadata.name === 'orders-allow-frontend')).toBe(cand[0])
    const other = docs(cut.replace('name: orders-allow-frontend', 'name: orders-extra'))
    expect(withCandidate(inForce, other)).toHaveLength(3)
  })

  test('a policy that cuts an observed edge reports it as newly denied with its count; unchanged edges are not reported', () => {
    const changes = previewChanges(demoEdges(), docs(DEMO_POLICIES), docs(cut), ROOT)
    expect(changes).toHaveLength(1)
    expect(changes[0]).toMatchObject({
      source: spiffe('shop', 'frontend'),
      method: 'POST',
      path: '/orders',
      count: 40,
      before: { action: 'ALLOW', policy: 'shop/orders-allow-frontend', rule: 0 },
      after: { action: 'DENY', reason: 'deny: no ALLOW policy matched (1 applied: shop/orders-allow-frontend)' },
      approximate: false,
    })
  })

  test('a policy that opens a denied edge reports it as newly allowed', () => {
    const open = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-batch, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules: [{ from: [{ source: { namespaces: ["batch"] } }] }]
`
    const changes = previewChanges(demoEdges(), docs(DEMO_POLICIES), docs(open), ROOT)
    expect(changes.map((c) => [c.after.action, c.source, c.path, c.count, c.approximate])).toEqual([['ALLOW', spiffe('batch', 'reporter'), '/orders/{id}', 3, true]])
    expect(changes[0]!.after.policy).toBe('shop/orders-allow-batch')
  })

  test('the policies in force as the candidate change nothing', () => {
    expect(previewChanges(demoEdges(), docs(DEMO_POLICIES), docs(DEMO_POLICIES), ROOT)).toEqual([])
  })
})
