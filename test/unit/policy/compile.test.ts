// compile() + selectForWorkload(): scope resolution, PeerAuthentication inheritance as Istio's
// ComposePeerAuthentication, and the rule indexes (checked against the unindexed explain()).
import { describe, expect, test } from 'vitest'
import {
  compile,
  evaluate,
  explain,
  mtlsModeFor,
  selectForWorkload,
  validate,
  type PolicyDocument,
  type RequestFacts,
} from '../../../proxy/policy/index.js'

function docs(...raw: unknown[]): PolicyDocument[] {
  return raw.map((r) => {
    const v = validate(r)
    if (!v.policy) throw new Error(JSON.stringify(v.errors))
    return v.policy
  })
}

const pa = (name: string, namespace: string, spec: Record<string, unknown>, creationTimestamp?: string) => ({
  apiVersion: 'security.istio.io/v1beta1',
  kind: 'PeerAuthentication',
  metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) },
  spec,
})
const ap = (name: string, namespace: string, spec: Record<string, unknown>, annotations?: Record<string, string>) => ({
  apiVersion: 'security.remora.dev/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
  spec,
})

const orders = { namespace: 'shop', labels: { app: 'orders' } }
const peerOf = (...raw: unknown[]) => selectForWorkload(compile(docs(...raw)), orders).peerAuthn

describe('PeerAuthentication resolution (Istio ComposePeerAuthentication)', () => {
  test('nothing at all: PERMISSIVE, no policy', () => {
    const p = peerOf()
    expect(p).toEqual({ mode: 'PERMISSIVE', portLevel: new Map(), policy: null })
  })

  test('mesh-wide (root namespace, no selector) applies', () => {
    expect(peerOf(pa('mesh', 'remora-system', { mtls: { mode: 'STRICT' } }))).toMatchObject({ mode: 'STRICT', policy: 'remora-system/mesh' })
  })

  test('namespace-wide overrides mesh-wide', () => {
    const p = peerOf(pa('mesh', 'remora-system', { mtls: { mode: 'STRICT' } }), pa('ns', 'shop', { mtls: { mode: 'PERMISSIVE' } }))
    expect(p).toMatchObject({ mode: 'PERMISSIVE', policy: 'shop/ns' })
  })

  test('workload (selector) overrides namespace-wide', () => {
    const p = peerOf(pa('ns', 'shop', { mtls: { mode: 'PERMISSIVE' } }), pa('wl', 'shop', { selector: { matchLabels: { app: 'orders' } }, mtls: { mode: 'STRICT' } }))
    expect(p).toMatchObject({ mode: 'STRICT', policy: 'shop/wl' })
  })

  test('a workload policy whose selector does not match is ignored', () => {
    const p = peerOf(pa('ns', 'shop', { mtls: { mode: 'PERMISSIVE' } }), pa('wl', 'shop', { selector: { matchLabels: { app: 'payments' } }, mtls: { mode: 'STRICT' } }))
    expect(p).toMatchObject({ mode: 'PERMISSIVE', policy: 'shop/ns' })
  })

  test('UNSET inherits from the level above', () => {
    const p = peerOf(pa('mesh', 'remora-system', { mtls: { mode: 'STRICT' } }), pa('ns', 'shop', { mtls: { mode: 'UNSET' } }), pa('wl', 'shop', { selector: { matchLabels: { app: 'orders' } } }))
    expect(p).toMatchObject({ mode: 'STRICT', policy: 'remora-system/mesh' })
  })

  test('DISABLE at workload level', () => {
    expect(peerOf(pa('wl', 'shop', { selector: { matchLabels: { app: 'orders' } }, mtls: { mode: 'DISABLE' } })).mode).toBe('DISABLE')
  })

  test('a policy in another namespace does not apply', () => {
    expect(peerOf(pa('ns', 'billing', { mtls: { mode: 'STRICT' } })).mode).toBe('PERMISSIVE')
  })

  test('a selector policy in the root namespace is ignored (as Istio does)', () => {
    const p = peerOf(pa('root-wl', 'remora-system', { selector: { matchLabels: { app: 'orders' } }, mtls: { mode: 'STRICT' } }))
    expect(p).toMatchObject({ mode: 'PERMISSIVE', policy: null })
  })

  test('several at one level: the oldest wins', () => {
    const p = peerOf(pa('b-new', 'shop', { mtls: { mode: 'DISABLE' } }, '2024-02-01T00:00:00Z'), pa('z-old', 'shop', { mtls: { mode: 'STRICT' } }, '2024-01-01T00:00:00Z'))
    expect(p).toMatchObject({ mode: 'STRICT', policy: 'shop/z-old' })
  })

  test('several at one level with the same timestamp: the first by name wins', () => {
    const t = '2024-01-01T00:00:00Z'
    const p = peerOf(pa('b', 'shop', { mtls: { mode: 'DISABLE' } }, t), pa('a', 'shop', { mtls: { mode: 'STRICT' } }, t))
    expect(p).toMatchObject({ mode: 'STRICT', policy: 'shop/a' })
  })

  test('a policy with a timestamp is older than one without', () => {
    const p = peerOf(pa('a', 'shop', { mtls: { mode: 'DISABLE' } }), pa('b', 'shop', { mtls: { mode: 'STRICT' } }, '2024-01-01T00:00:00Z'))
    expect(p).toMatchObject({ mode: 'STRICT', policy: 'shop/b' })
  })

  test('portLevelMtls overrides per port; UNSET ports inherit the workload mode', () => {
    const wp = selectForWorkload(
      compile(
        docs(
          pa('ns', 'shop', { mtls: { mode: 'STRICT' } }),
          pa('wl', 'shop', { selector: { matchLabels: { app: 'orders' } }, portLevelMtls: { '8080': { mode: 'DISABLE' }, '9090': { mode: 'UNSET' }, '7070': { mode: 'PERMISSIVE' } } }),
        ),
      ),
      orders,
    )
    expect(wp.peerAuthn.mode).toBe('STRICT')
    expect(mtlsModeFor(wp, 8080)).toBe('DISABLE')
    expect(mtlsModeFor(wp, 9090)).toBe('STRICT')
    expect(mtlsModeFor(wp, 7070)).toBe('PERMISSIVE')
    expect(mtlsModeFor(wp, 443)).toBe('STRICT')
  })

  test('a custom root namespace', () => {
    const set = compile(docs(pa('mesh', 'istio-system', { mtls: { mode: 'STRICT' } })), { rootNamespace: 'istio-system' })
    expect(selectForWorkload(set, orders).peerAuthn.mode).toBe('STRICT')
    expect(selectForWorkload(compile(docs(pa('mesh', 'istio-system', { mtls: { mode: 'STRICT' } }))), orders).peerAuthn.mode).toBe('PERMISSIVE')
  })
})

describe('AuthorizationPolicy scope', () => {
  const set = compile(
    docs(
      ap('ns-wide', 'shop', { rules: [{}] }),
      ap('orders-only', 'shop', { selector: { matchLabels: { app: 'orders' } }, action: 'DENY', rules: [{}] }),
      ap('mesh', 'remora-system', { action: 'AUDIT', rules: [{}] }),
      ap('mesh-orders', 'remora-system', { selector: { matchLabels: { app: 'orders' } }, rules: [{}] }),
      ap('other-ns', 'billing', { rules: [{}] }),
      ap('dry', 'shop', { action: 'DENY', rules: [{}] }, { 'istio.io/dry-run': 'true' }),
    ),
  )

  test('selected once per workload, in namespace/name order', () => {
    const wp = selectForWorkload(set, orders)
    expect(wp.authzPolicies.map((p) => p.policy)).toEqual(['remora-system/mesh', 'remora-system/mesh-orders', 'shop/dry', 'shop/ns-wide', 'shop/orders-only'])
    expect(wp.authzPolicyCount).toBe(5)
    expect(wp.authzPolicies.find((p) => p.policy === 'shop/dry')).toMatchObject({ dryRun: true, action: 'DENY' })
  })

  test('another workload of the namespace gets the namespace-wide and mesh-wide ones', () => {
    const wp = selectForWorkload(set, { namespace: 'shop', labels: { app: 'payments' } })
    expect(wp.authzPolicies.map((p) => p.policy)).toEqual(['remora-system/mesh', 'shop/dry', 'shop/ns-wide'])
  })

  test('a workload of the root namespace gets the root policies once', () => {
    const wp = selectForWorkload(set, { namespace: 'remora-system', labels: {} })
    expect(wp.authzPolicies.map((p) => p.policy)).toEqual(['remora-system/mesh'])
  })

  test('the input documents are not modified by compile()', () => {
    const input = docs(ap('a', 'shop', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/a/sa/b'] } }] }] }))
    const before = JSON.stringify(input)
    selectForWorkload(compile(input), orders)
    expect(JSON.stringify(input)).toBe(before)
  })

  test('compile() refuses input that was not validated', () => {
    const bad = { apiVersion: 'security.remora.dev/v1', kind: 'AuthorizationPolicy', metadata: { name: 'x', namespace: 'shop' }, spec: { rules: [{ from: [{ source: { ipBlocks: ['nope'] } }] }] } }
    expect(() => compile([bad as PolicyDocument])).toThrow(TypeError)
  })
})

describe('rule indexes agree with the unindexed evaluation', () => {
  // A deterministic pseudo-random mix of indexed (exact principal / exact path) and unindexed rules.
  let seed = 42
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return (seed >>> 16) % n
  }
  const sas = ['a', 'b', 'c', 'd', 'e']
  const paths = ['/x', '/y', '/z', '/api/1', '/api/2']
  const principal = () => `cluster.local/ns/web/sa/${sas[rnd(sas.length)]}`
  const rule = (): Record<string, unknown> => {
    switch (rnd(8)) {
      case 0:
        return { from: [{ source: { principals: [principal(), principal()] } }] }
      case 1:
        return { from: [{ source: { principals: [principal()] } }], to: [{ operation: { methods: [rnd(2) ? 'GET' : 'POST'] } }] }
      case 2:
        return { to: [{ operation: { paths: [paths[rnd(paths.length)]!] } }] }
      case 3:
        return { to: [{ operation: { paths: ['/api/*'], methods: ['GET'] } }] }
      case 4:
        return { from: [{ source: { principals: [principal()] } }, { source: { namespaces: ['batch'] } }] }
      case 5:
        return { from: [{ source: { namespaces: [rnd(2) ? 'web' : 'batch'] } }], to: [{ operation: { methods: ['POST'] } }] }
      case 6:
        return { from: [{ source: { namespaces: ['web', 'batch'], notPrincipals: [principal()] } }] }
      default:
        return { from: [{ source: { notPrincipals: [principal()] } }], to: [{ operation: { paths: [paths[rnd(paths.length)]!] } }] }
    }
  }
  const policies: unknown[] = []
  for (let i = 0; i < 40; i++) {
    const action = rnd(3) === 0 ? 'DENY' : 'ALLOW'
    policies.push(ap(`p${String(i).padStart(2, '0')}`, 'shop', { action, rules: Array.from({ length: 1 + rnd(4) }, rule) }))
  }
  const wp = selectForWorkload(compile(docs(...policies)), orders)

  const requests: RequestFacts[] = []
  for (const sa of [...sas, 'zz']) {
    for (const path of [...paths, '/other']) {
      for (const method of ['GET', 'POST']) {
        for (const ns of ['web', 'batch']) {
          requests.push({
            source: { principal: `spiffe://cluster.local/ns/${ns}/sa/${sa}`, namespace: ns, ip: '10.0.0.1' },
            destination: { port: 8080 },
            request: { method, host: 'orders.shop', path, headers: {}, auth: null },
          })
        }
      }
    }
  }

  test.each(requests.map((r, i) => [i, r] as const))('request %i', (_i, facts) => {
    const d = evaluate(wp, facts)
    const ex = explain(wp, facts)
    const firstOf = (action: string) => ex.policies.find((p) => !p.dryRun && p.action === action && p.matched)
    const deny = firstOf('DENY')
    const allow = firstOf('ALLOW')
    if (deny) expect([d.action, d.policy, d.ruleIndex]).toEqual(['DENY', deny.policy, deny.ruleIndex])
    else if (allow) expect([d.action, d.policy, d.ruleIndex]).toEqual(['ALLOW', allow.policy, allow.ruleIndex])
    else expect([d.action, d.policy]).toEqual(['DENY', null])
  })
})
