// evaluateConnection(): Istio's authorization for TCP. An ALLOW rule with any HTTP-only field
// (methods, paths, hosts, requestPrincipals, request.* conditions) never matches a connection; a
// DENY rule's HTTP-only fields are ignored, so it matches more and fails closed. L4 fields
// (principals, namespaces, ipBlocks, ports, connection.sni, destination.ip) apply as for HTTP.
import { describe, expect, test } from 'vitest'
import { compile, evaluateConnection, selectForWorkload, validate, type ConnectionFacts, type PolicyDocument } from '../../../proxy/policy/index.js'

const ap = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec,
})

function workload(...raw: unknown[]) {
  const docs = raw.map((r) => {
    const v = validate(r)
    if (!v.policy) throw new Error(JSON.stringify(v))
    return v.policy as PolicyDocument
  })
  return selectForWorkload(compile(docs), { namespace: 'shop', labels: { app: 'db' } })
}

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend'
const conn = (over: Partial<ConnectionFacts> = {}): ConnectionFacts => ({ principal: FRONTEND, namespace: 'web', sourceIp: '10.0.0.1', destinationPort: 5432, ...over })

describe('ALLOW', () => {
  test('principals and ports match a connection', () => {
    const wp = workload(ap('a', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/web/sa/frontend'] } }], to: [{ operation: { ports: ['5432'] } }] }] }))
    expect(evaluateConnection(wp, conn()).action).toBe('ALLOW')
    expect(evaluateConnection(wp, conn({ destinationPort: 6379 })).action).toBe('DENY')
    expect(evaluateConnection(wp, conn({ principal: 'spiffe://cluster.local/ns/batch/sa/w', namespace: 'batch' })).action).toBe('DENY')
    expect(evaluateConnection(wp, conn({ principal: null, namespace: null })).action).toBe('DENY')
  })

  test('a rule that needs methods, paths, hosts or a request principal never matches TCP', () => {
    for (const op of [{ methods: ['GET'] }, { paths: ['/x'] }, { hosts: ['db.shop'] }, { notMethods: ['DELETE'] }]) {
      const wp = workload(ap('a', { rules: [{ from: [{ source: { namespaces: ['web'] } }], to: [{ operation: op }] }] }))
      const d = evaluateConnection(wp, conn())
      expect(d.action, JSON.stringify(op)).toBe('DENY')
      expect(d.reason).toContain('TCP connection')
    }
    const rp = workload(ap('a', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] }))
    expect(evaluateConnection(rp, conn()).action).toBe('DENY')
    const when = workload(ap('a', { rules: [{ when: [{ key: 'request.headers[x-a]', values: ['1'] }] }] }))
    expect(evaluateConnection(when, conn()).action).toBe('DENY')
  })

  test('the L4 rules of a policy still apply when another rule of it needs HTTP', () => {
    const wp = workload(ap('a', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }, { from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }] }))
    const d = evaluateConnection(wp, conn())
    expect(d).toMatchObject({ action: 'ALLOW', policy: 'shop/a', ruleIndex: 1 })
  })

  test('connection.sni and destination.ip conditions are L4', () => {
    const wp = workload(ap('a', { rules: [{ when: [{ key: 'connection.sni', values: ['db.shop'] }] }] }))
    expect(evaluateConnection(wp, conn({ sni: 'db.shop' })).action).toBe('ALLOW')
    expect(evaluateConnection(wp, conn({ sni: 'other' })).action).toBe('DENY')
  })
})

describe('DENY fails closed', () => {
  test("a DENY rule's HTTP-only fields are ignored: methods on a port denies the whole port", () => {
    const wp = workload(ap('d', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'], ports: ['5432'] } }] }] }))
    expect(evaluateConnection(wp, conn())).toMatchObject({ action: 'DENY', policy: 'shop/d', ruleIndex: 0 })
    expect(evaluateConnection(wp, conn({ destinationPort: 6379 })).action).toBe('ALLOW')
  })

  test('a DENY rule made only of HTTP fields denies every connection', () => {
    const wp = workload(ap('d', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }))
    expect(evaluateConnection(wp, conn()).action).toBe('DENY')
    const rp = workload(ap('d', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] }))
    expect(evaluateConnection(rp, conn()).action).toBe('DENY')
  })

  test('DENY on an L4 field keeps its meaning', () => {
    const wp = workload(ap('d', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['batch'] } }] }] }))
    expect(evaluateConnection(wp, conn()).action).toBe('ALLOW')
    expect(evaluateConnection(wp, conn({ principal: 'spiffe://cluster.local/ns/batch/sa/w', namespace: 'batch' })).action).toBe('DENY')
  })

  test('no policy: allow', () => {
    expect(evaluateConnection(workload(), conn()).action).toBe('ALLOW')
  })
})
