// evaluate(): the Decision and its reason, dry run, audit, the JWT note, explain(); purity.
import { describe, expect, test } from 'vitest'
import { compile, evaluate, explain, selectForWorkload, validate, type PolicyDocument, type RequestFacts } from '../../../proxy/policy/index.js'

const ap = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop', ...(annotations ? { annotations } : {}) },
  spec,
})

function workload(...raw: unknown[]) {
  const docs = raw.map((r) => validate(r).policy as PolicyDocument)
  return selectForWorkload(compile(docs), { namespace: 'shop', labels: { app: 'orders' } })
}

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend'
const BATCH = 'spiffe://cluster.local/ns/batch/sa/worker'

function req(over: { principal?: string | null; method?: string; path?: string; auth?: RequestFacts['request']['auth'] } = {}): RequestFacts {
  const principal = over.principal === undefined ? FRONTEND : over.principal
  return {
    source: { principal, namespace: principal ? principal.split('/')[4]! : null, ip: '10.0.0.1' },
    destination: { port: 8080 },
    request: { method: over.method ?? 'GET', host: 'orders.shop', path: over.path ?? '/api/orders', headers: {}, auth: over.auth ?? null },
  }
}

const allowFrontend = ap('allow-frontend', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/web/sa/frontend'] } }] }] })
const denyBatch = ap('deny-batch', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }, { from: [{ source: { namespaces: ['batch'] } }] }] })

describe('reasons', () => {
  test('allow by a rule names the policy and rule', () => {
    expect(evaluate(workload(allowFrontend), req())).toEqual({
      action: 'ALLOW',
      policy: 'shop/allow-frontend',
      ruleIndex: 0,
      reason: 'allow by shop/allow-frontend rules[0]',
      dryRun: [],
      audit: null,
    })
  })

  test('deny by a rule names the policy and rule', () => {
    const d = evaluate(workload(allowFrontend, denyBatch), req({ principal: BATCH }))
    expect(d).toMatchObject({ action: 'DENY', policy: 'shop/deny-batch', ruleIndex: 1, reason: 'deny by shop/deny-batch rules[1]' })
  })

  test('deny by default lists the ALLOW policies tried', () => {
    const d = evaluate(workload(allowFrontend, ap('allow-health', { rules: [{ to: [{ operation: { paths: ['/healthz'] } }] }] })), req({ principal: BATCH }))
    expect(d).toMatchObject({ action: 'DENY', policy: null, ruleIndex: null, reason: 'deny: no ALLOW policy matched (2 applied: shop/allow-frontend, shop/allow-health)' })
  })

  test('deny by default names at most five policies', () => {
    const many = Array.from({ length: 7 }, (_, i) => ap(`allow-${i}`, { rules: [{ to: [{ operation: { paths: [`/p${i}`] } }] }] }))
    expect(evaluate(workload(...many), req()).reason).toBe('deny: no ALLOW policy matched (7 applied: shop/allow-0, shop/allow-1, shop/allow-2, shop/allow-3, shop/allow-4 and 2 more)')
  })

  test('allow by default when no ALLOW policy applies', () => {
    expect(evaluate(workload(denyBatch), req())).toMatchObject({ action: 'ALLOW', policy: null, ruleIndex: null, reason: 'allow: no ALLOW policy applies' })
  })

  test('deny by default adds the JWT note when an ALLOW policy needed a request principal', () => {
    const d = evaluate(workload(ap('require-jwt', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] })), req())
    expect(d.reason).toBe('deny: no ALLOW policy matched (1 applied: shop/require-jwt); no request principal: JWT not validated')
  })

  test('the JWT note is absent when a token was validated', () => {
    const auth = { principal: 'https://iss/bob', audiences: [], presenter: null, claims: {} }
    const d = evaluate(workload(ap('allow-alice', { rules: [{ from: [{ source: { requestPrincipals: ['https://iss/alice'] } }] }] })), req({ auth }))
    expect(d.reason).toBe('deny: no ALLOW policy matched (1 applied: shop/allow-alice)')
  })

  test('a DENY that matched because no JWT was there says so', () => {
    const d = evaluate(workload(ap('require-jwt', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] })), req())
    expect(d.reason).toBe('deny by shop/require-jwt rules[0] (no request principal: JWT not validated)')
  })
})

describe('dry run and audit', () => {
  test('a dry-run DENY that matches is reported and not enforced', () => {
    const d = evaluate(workload(allowFrontend, ap('deny-all', { action: 'DENY', rules: [{}] }, { 'remora.dev/dry-run': 'true' })), req())
    expect(d).toMatchObject({ action: 'ALLOW', policy: 'shop/allow-frontend' })
    expect(d.dryRun).toEqual([{ policy: 'shop/deny-all', action: 'DENY', matched: true, ruleIndex: 0 }])
  })

  test('a dry-run ALLOW is reported with its match', () => {
    const d = evaluate(workload(ap('allow-get', { rules: [{ to: [{ operation: { methods: ['POST'] } }] }, { to: [{ operation: { methods: ['GET'] } }] }] }, { 'istio.io/dry-run': 'true' })), req())
    expect(d).toMatchObject({ action: 'ALLOW', policy: null, reason: 'allow: no ALLOW policy applies' })
    expect(d.dryRun).toEqual([{ policy: 'shop/allow-get', action: 'ALLOW', matched: true, ruleIndex: 1 }])
  })

  test('"True" is read as Go ParseBool reads it: dry run', () => {
    const d = evaluate(workload(ap('deny-all', { action: 'DENY', rules: [{}] }, { 'istio.io/dry-run': 'True' })), req())
    expect(d.action).toBe('ALLOW')
  })

  test('"yes" is not a boolean for Go ParseBool: enforced', () => {
    const d = evaluate(workload(ap('deny-all', { action: 'DENY', rules: [{}] }, { 'istio.io/dry-run': 'yes' })), req())
    expect(d.action).toBe('DENY')
  })

  test('AUDIT records the first matching audit rule, whatever the decision', () => {
    const audit = ap('audit-get', { action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['POST'] } }] }, { to: [{ operation: { methods: ['GET'] } }] }] })
    expect(evaluate(workload(audit, denyBatch), req({ principal: BATCH })).audit).toEqual({ policy: 'shop/audit-get', ruleIndex: 1 })
    expect(evaluate(workload(audit), req({ method: 'PUT' })).audit).toBeNull()
  })
})

describe('purity', () => {
  test('the same facts give the same decision, and the facts are not modified', () => {
    const wp = workload(allowFrontend, denyBatch)
    const facts = req({ principal: BATCH })
    const frozen = JSON.stringify(facts)
    const a = evaluate(wp, facts)
    const b = evaluate(wp, facts)
    expect(a).toEqual(b)
    expect(JSON.stringify(facts)).toBe(frozen)
  })

  test('an empty-string principal is a plaintext caller', () => {
    const d = evaluate(workload(ap('mtls', { rules: [{ from: [{ source: { principals: ['*'] } }] }] })), req({ principal: '' }))
    expect(d.action).toBe('DENY')
  })

  test('an unparsable source address matches no CIDR (and every notIpBlocks)', () => {
    const wp = workload(ap('net', { rules: [{ from: [{ source: { ipBlocks: ['0.0.0.0/0'] } }] }] }))
    const f = req()
    expect(evaluate(wp, { ...f, source: { ...f.source, ip: 'not-an-ip' } }).action).toBe('DENY')
  })
})

describe('explain()', () => {
  test('says why each policy did not match', () => {
    const ex = explain(workload(allowFrontend, denyBatch), req({ principal: BATCH, method: 'GET' }))
    expect(ex.decision.policy).toBe('shop/deny-batch')
    const allow = ex.policies.find((p) => p.policy === 'shop/allow-frontend')!
    expect(allow.matched).toBe(false)
    expect(allow.summary).toBe(`rules[0].from[0].source.principals did not match "${BATCH}"`)
    const deny = ex.policies.find((p) => p.policy === 'shop/deny-batch')!
    expect(deny).toMatchObject({ matched: true, ruleIndex: 1, summary: 'matched rules[1]' })
    expect(deny.rules[0]).toEqual({ index: 0, matched: false, mismatch: 'rules[0].to[0].operation.methods did not match "GET"' })
  })

  test('a policy without rules matches nothing', () => {
    const ex = explain(workload(ap('allow-nothing', {})), req())
    expect(ex.policies).toEqual([{ policy: 'shop/allow-nothing', action: 'ALLOW', dryRun: false, matched: false, ruleIndex: null, rules: [], summary: 'no rules: matches nothing' }])
  })

  test('a not* field names its negated field', () => {
    const ex = explain(workload(ap('not-batch', { rules: [{ from: [{ source: { notNamespaces: ['batch'] } }] }] })), req({ principal: BATCH }))
    expect(ex.policies[0]!.summary).toBe('rules[0].from[0].source.notNamespaces did not match "batch"')
  })

  test('a JWT-dependent mismatch says the JWT was not validated', () => {
    const ex = explain(workload(ap('admins', { rules: [{ when: [{ key: 'request.auth.claims[groups]', values: ['admin'] }] }] })), req())
    expect(ex.policies[0]!.summary).toContain('rules[0].when[0].values did not match (no request principal: JWT not validated)')
  })
})

// Issue 13, finding 5: a fact that occurs more than once. Istio matches a repeated header against
// its values joined with "," and its generated regex `^v$|^v,.*|.*,v,.*|.*,v$` lets any element
// match; remora also trims optional whitespace (one line `a, b` is the same list per RFC 9110).
describe('repeated facts', () => {
  const withHeaders = (headers: Record<string, string | string[]>): RequestFacts => ({ ...req(), request: { ...req().request, headers } })
  const denyWhen = (values: Record<string, unknown>) => ap('deny-h', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[x-user]', ...values }] }] })
  const decide = (p: unknown, headers: Record<string, string | string[]>) => evaluate(workload(p), withHeaders(headers)).action

  test.each<[string, string | string[], 'ALLOW' | 'DENY']>([
    ['alice,mallory', 'alice,mallory', 'DENY'],
    ['mallory,alice', 'mallory,alice', 'DENY'],
    ['alice, mallory (one line, OWS)', 'alice, mallory', 'DENY'],
    ['alice,\tmallory ,bob (HTAB and SP)', 'alice,\tmallory ,bob', 'DENY'],
    ['two copies [alice, mallory]', ['alice', 'mallory'], 'DENY'],
    ['two copies [mallory, alice]', ['mallory', 'alice'], 'DENY'],
    ['the twin: alice,bob', 'alice,bob', 'ALLOW'],
    ['the twin: not-mallory,malloryx', 'not-mallory,malloryx', 'ALLOW'],
    ['the twin: mallory as a substring of one element', 'xmallory y', 'ALLOW'],
  ])('exact DENY values: [mallory] against %s → %s', (_n, v, want) => {
    expect(decide(denyWhen({ values: ['mallory'] }), { 'x-user': v })).toBe(want)
  })

  test('the whole joined value still matches (Istio: ^v$), so "a,b" matches two copies a and b', () => {
    expect(decide(denyWhen({ values: ['alice,mallory'] }), { 'x-user': ['alice', 'mallory'] })).toBe('DENY')
  })

  test('prefix and suffix match any element', () => {
    expect(decide(denyWhen({ values: ['mal*'] }), { 'x-user': 'alice, mallory' })).toBe('DENY')
    expect(decide(denyWhen({ values: ['*lory'] }), { 'x-user': 'mallory ,alice' })).toBe('DENY')
    expect(decide(denyWhen({ values: ['mal*'] }), { 'x-user': 'alice, bob' })).toBe('ALLOW')
  })

  test('notValues is the negation of that match: any element equal to the value counts as the value', () => {
    const p = denyWhen({ notValues: ['alice'] })
    expect(decide(p, { 'x-user': 'mallory, alice' })).toBe('ALLOW')
    expect(decide(p, { 'x-user': 'mallory, bob' })).toBe('DENY')
  })

  test('ALLOW values: any element can match (Istio semantics), never a substring', () => {
    const p = ap('allow-h', { rules: [{ when: [{ key: 'request.headers[x-user]', values: ['alice'] }] }] })
    expect(decide(p, { 'x-user': 'bob, alice' })).toBe('ALLOW')
    expect(decide(p, { 'x-user': 'bob, alicex' })).toBe('DENY')
  })

  const scoped = (claim: string, values: string[], action = 'DENY') => ap('claim', { action, rules: [{ when: [{ key: `request.auth.claims[${claim}]`, values }] }] })
  const withClaims = (claims: Record<string, unknown>): RequestFacts => ({ ...req(), request: { ...req().request, auth: { principal: 'iss/alice', audiences: [], presenter: null, claims } } })

  test('scope and permission are space-delimited lists, as Istio normalizes them (space_delimited_claims)', () => {
    expect(evaluate(workload(scoped('scope', ['admin'])), withClaims({ scope: 'read admin' })).action).toBe('DENY')
    expect(evaluate(workload(scoped('permission', ['delete'])), withClaims({ permission: 'read  delete' })).action).toBe('DENY')
    expect(evaluate(workload(scoped('scope', ['admin'])), withClaims({ scope: 'read write' })).action).toBe('ALLOW')
    expect(evaluate(workload(scoped('scope', ['read'], 'ALLOW')), withClaims({ scope: 'read write' })).action).toBe('ALLOW')
    expect(evaluate(workload(scoped('scope', ['read'], 'ALLOW')), withClaims({ scope: ['read', 'write'] })).action).toBe('ALLOW')
  })

  test('other string claims are matched whole (Istio splits only scope and permission)', () => {
    expect(evaluate(workload(scoped('role', ['admin'])), withClaims({ role: 'read admin' })).action).toBe('ALLOW')
    expect(evaluate(workload(scoped('role', ['read admin'])), withClaims({ role: 'read admin' })).action).toBe('DENY')
  })

  test('list claims (groups, aud) and nested claims match any element', () => {
    expect(evaluate(workload(scoped('groups', ['admin'])), withClaims({ groups: ['dev', 'admin'] })).action).toBe('DENY')
    expect(evaluate(workload(scoped('org][teams', ['red'])), withClaims({ org: { teams: ['blue', 'red'] } })).action).toBe('DENY')
  })
})
