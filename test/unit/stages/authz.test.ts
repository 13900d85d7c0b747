// authz: an AuthorizationPolicy set compiled with proxy/policy (validate → compile →
// selectForWorkload), run on plain contexts. The stage owns: setting ctx.decision, refusing a DENY
// before next, not enforcing dry-run policies, and deciding on the headers the app will receive.
// What each policy field matches is evaluate()'s (test/unit/policy, test/cases).
import { describe, expect, test } from 'vitest'
import { compile, selectForWorkload, validate, type PolicyDocument, type WorkloadPolicy } from '../../../proxy/policy/index.js'
import type { RequestContext } from '../../../proxy/pipeline/index.js'
import { createAuthzStage } from '../../../proxy/stages/index.js'
import { BATCH, FRONTEND, peer, proxyErrorOf, recordingNext, sanitizedContext, type TestContext } from './context.js'

const ap = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop', ...(annotations ? { annotations } : {}) },
  spec,
})

function workload(...raw: unknown[]): WorkloadPolicy {
  const docs = raw.map((r) => {
    const v = validate(r)
    if (!v.policy) throw new Error(`test: invalid policy ${JSON.stringify(v)}`)
    return v.policy as PolicyDocument
  })
  return selectForWorkload(compile(docs), { namespace: 'shop', labels: { app: 'orders' } })
}

const allowFrontend = ap('allow-frontend', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/web/sa/frontend'] } }] }] })
const denyDelete = ap('deny-delete', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })

function run(policy: WorkloadPolicy, ctx: TestContext, destinationPort = 8080) {
  const next = recordingNext()
  const decided: RequestContext[] = []
  const done = createAuthzStage({ policy, destinationPort, onDecision: (c) => void decided.push(c) })(next)(ctx)
  return { next, decided, done }
}

describe('authz: ALLOW policies', () => {
  test('a caller the ALLOW policy names reaches next, and ctx.decision names the rule', async () => {
    const ctx = sanitizedContext({ peer: peer(FRONTEND) })
    const r = run(workload(allowFrontend), ctx)
    await r.done
    expect(r.next.calls).toEqual([ctx])
    expect(ctx.decision).toMatchObject({ action: 'ALLOW', policy: 'shop/allow-frontend', ruleIndex: 0, reason: 'allow by shop/allow-frontend rules[0]' })
  })

  test('a caller it does not name is 403 REMORA_ERR_AUTHZ_DENIED with the reason, and next never runs', async () => {
    const ctx = sanitizedContext({ peer: peer(BATCH) })
    const r = run(workload(allowFrontend), ctx)
    const err = await proxyErrorOf(r.done)
    expect(err).toMatchObject({ code: 'REMORA_ERR_AUTHZ_DENIED', status: 403, flag: 'AZ', detail: 'deny: no ALLOW policy matched (1 applied: shop/allow-frontend)' })
    expect(r.next.calls).toHaveLength(0)
    expect(ctx.decision).toMatchObject({ action: 'DENY', policy: null })
  })

  test('a plaintext caller (no verified peer) is denied by a principal rule', async () => {
    const r = run(workload(allowFrontend), sanitizedContext({ peer: null }))
    expect((await proxyErrorOf(r.done)).code).toBe('REMORA_ERR_AUTHZ_DENIED')
    expect(r.next.calls).toHaveLength(0)
  })
})

describe('authz: DENY policies', () => {
  test('a request a DENY rule matches is refused; the same caller with another method passes', async () => {
    const deleted = sanitizedContext({ peer: peer(FRONTEND), method: 'DELETE' })
    const d = run(workload(allowFrontend, denyDelete), deleted)
    expect(await proxyErrorOf(d.done)).toMatchObject({ code: 'REMORA_ERR_AUTHZ_DENIED', detail: 'deny by shop/deny-delete rules[0]' })
    expect(d.next.calls).toHaveLength(0)

    const got = sanitizedContext({ peer: peer(FRONTEND), method: 'GET' })
    const g = run(workload(allowFrontend, denyDelete), got)
    await g.done
    expect(g.next.calls).toEqual([got])
  })

  test('the destination port is the configured workload port, not the listener port', async () => {
    const onlyAdminPort = ap('deny-admin-port', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['9901'] } }] }] })
    const ctx = () => sanitizedContext({ peer: peer(), localPort: 15006 })
    expect((await proxyErrorOf(run(workload(onlyAdminPort), ctx(), 9901).done)).code).toBe('REMORA_ERR_AUTHZ_DENIED')
    await run(workload(onlyAdminPort), ctx(), 8080).done
  })
})

describe('authz: dry run', () => {
  test('a matching dry-run DENY is recorded on the decision and not enforced', async () => {
    const ctx = sanitizedContext({ peer: peer(FRONTEND), method: 'DELETE' })
    const r = run(workload(allowFrontend, ap('deny-delete', denyDelete.spec, { 'istio.io/dry-run': 'true' })), ctx)
    await r.done
    expect(r.next.calls).toEqual([ctx])
    expect(ctx.decision).toMatchObject({ action: 'ALLOW', policy: 'shop/allow-frontend', dryRun: [{ policy: 'shop/deny-delete', action: 'DENY', matched: true, ruleIndex: 0 }] })
  })

  test('the same DENY without the annotation is enforced', async () => {
    const r = run(workload(allowFrontend, denyDelete), sanitizedContext({ peer: peer(FRONTEND), method: 'DELETE' }))
    expect((await proxyErrorOf(r.done)).code).toBe('REMORA_ERR_AUTHZ_DENIED')
  })
})

describe('authz: the headers a policy sees are the ones the app gets (ctx.headers)', () => {
  const allowAdmins = ap('allow-admins', { rules: [{ when: [{ key: 'request.headers[x-role]', values: ['admin'] }] }] })

  test('a header value the caller sent but earlier stages replaced does not satisfy a rule', async () => {
    // On the wire `x-role: admin`; what the app gets (set by sanitize/authnJwt) is `x-role: user`.
    const ctx = sanitizedContext({ peer: peer(), rawHeaders: ['X-Role', 'admin'] }, { headers: { host: 'orders.shop', 'x-role': 'user' } })
    const r = run(workload(allowAdmins), ctx)
    expect((await proxyErrorOf(r.done)).code).toBe('REMORA_ERR_AUTHZ_DENIED')
    expect(r.next.calls).toHaveLength(0)
  })

  test('the value the app gets does satisfy it', async () => {
    const ctx = sanitizedContext({ peer: peer() }, { headers: { host: 'orders.shop', 'x-role': 'admin' } })
    const r = run(workload(allowAdmins), ctx)
    await r.done
    expect(r.next.calls).toEqual([ctx])
  })

  test('a sidecar-owned header the caller sent is invisible to a policy even if still in ctx.headers', async () => {
    const allowInternal = ap('allow-internal', { rules: [{ when: [{ key: 'request.headers[x-remora-internal]', values: ['1'] }] }] })
    const ctx = sanitizedContext({ peer: peer(), rawHeaders: ['X-Remora-Internal', '1'] })
    expect(ctx.headers['x-remora-internal']).toBe('1')
    expect((await proxyErrorOf(run(workload(allowInternal), ctx).done)).code).toBe('REMORA_ERR_AUTHZ_DENIED')
  })
})

describe('authz: the stage itself', () => {
  test('onDecision is called once per request, allow or deny', async () => {
    const a = run(workload(allowFrontend), sanitizedContext({ peer: peer(FRONTEND) }))
    await a.done
    const d = run(workload(allowFrontend), sanitizedContext({ peer: peer(BATCH) }))
    await d.done.catch(() => {})
    expect(a.decided).toHaveLength(1)
    expect(d.decided).toHaveLength(1)
    expect(d.decided[0]!.decision?.action).toBe('DENY')
  })

  test('no AuthorizationPolicy for the workload: the stage is left out', () => {
    const next = recordingNext()
    expect(createAuthzStage({ policy: workload(), destinationPort: 8080 })(next)).toBe(next)
    expect(createAuthzStage({ policy: workload(allowFrontend), destinationPort: 8080 })(next)).not.toBe(next)
  })
})
