// `remora apply --preview` and `remora check --replay` against a real mesh: four sidecars served
// traffic under the policies in force and reported it; a candidate that cuts an observed edge is
// reported with that edge and its count before anything is applied (and nothing is: the store,
// the version and the live decision stay), one that opens a denied edge is reported as newly
// allowed, --fail-on-new-denials turns a newly denied edge into exit 3, an invalid candidate is
// refused as apply refuses it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { remora, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js'

const IN_FORCE = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }] }]
`

// The same name as the policy in force, without POST: frontend's observed POST /orders is cut.
const CUT_POST = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/orders", "/orders/*"] } }]
`

const OPEN_PAYMENTS = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }], to: [{ operation: { methods: ["POST"] } }] }]
`

let mesh: TrafficMesh
let dir: string
let version: string
const file = async (name: string, text: string): Promise<string> => {
  const p = join(dir, name)
  await writeFile(p, text)
  return p
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-preview-'))
  mesh = await startTrafficMesh()
  version = await mesh.apply(IN_FORCE)
  for (let i = 0; i < 3; i++) expect(await mesh.call('frontend', 'orders', '/orders')).toBe(200)
  for (const id of ['12', '9876']) expect(await mesh.call('frontend', 'orders', `/orders/${id}`)).toBe(200)
  for (let i = 0; i < 4; i++) expect(await mesh.call('frontend', 'orders', '/orders', 'POST')).toBe(200)
  for (let i = 0; i < 2; i++) expect(await mesh.call('frontend', 'payments', '/charge', 'POST')).toBe(403)
  expect(await mesh.call('orders', 'payments', '/charge', 'POST')).toBe(200)
  await mesh.report()
}, 90_000)

afterAll(async () => {
  await mesh?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('remora apply --preview', () => {
  test('a policy that cuts an observed edge reports that edge with its count, and nothing is applied', async () => {
    const r = await remora(['apply', '--preview', '-f', await file('cut.yaml', CUT_POST)], mesh.cliEnv)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^newly denied: shop/frontend → shop/orders POST /orders \\(port ${mesh.apps.orders.port}\\) \\(4 requests, last seen \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\)$`, 'm'))
    expect(r.stdout).toContain('    now:   allow by shop/orders-allow-frontend rules[0]')
    expect(r.stdout).toContain('    after: deny: no ALLOW policy matched (1 applied: shop/orders-allow-frontend)')
    expect(r.stdout).not.toMatch(/newly (denied|allowed): .* GET /)
    expect(r.stdout).toMatch(/^preview: 1 edge\(s\) newly denied, 0 newly allowed; \d+ edge\(s\) \(12 requests\) replayed .*; nothing was applied$/m)
    // Nothing applied: the same version, the same stored policy, and the live decision unchanged.
    const policies = await mesh.api('GET', '/v1/policies?name=orders-allow-frontend')
    expect(policies.json.version).toBe(version)
    expect(JSON.stringify(policies.json.items)).toContain('"POST"')
    expect(await mesh.call('frontend', 'orders', '/orders', 'POST')).toBe(200)
  })

  test('--fail-on-new-denials: exit 3 when an observed edge would be newly denied', async () => {
    const r = await remora(['apply', '--preview', '--fail-on-new-denials', '-f', await file('cut.yaml', CUT_POST)], mesh.cliEnv)
    expect(r.code).toBe(3)
    expect(r.stdout).toContain('newly denied: shop/frontend → shop/orders POST /orders')
  })

  test('a policy that opens a denied edge reports it as newly allowed; no new denial, so exit 0 even with --fail-on-new-denials', async () => {
    const r = await remora(['apply', '--preview', '--fail-on-new-denials', '-f', await file('open.yaml', OPEN_PAYMENTS)], mesh.cliEnv)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^newly allowed: shop/frontend → shop/payments POST /charge \\(port ${mesh.apps.payments.port}\\) \\(2 requests, last seen .*\\)$`, 'm'))
    expect(r.stdout).toContain('    after: allow by shop/payments-allow-frontend rules[0]')
    expect(r.stdout).toMatch(/^preview: 0 edge\(s\) newly denied, 1 newly allowed;/m)
    expect((await mesh.api('GET', '/v1/policies?name=payments-allow-frontend')).json.items).toEqual([])
  })

  test('the policies in force as the candidate change nothing', async () => {
    const r = await remora(['apply', '--preview', '--fail-on-new-denials', '-f', await file('same.yaml', IN_FORCE)], mesh.cliEnv)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^preview: 0 edge\(s\) newly denied, 0 newly allowed;/m)
  })

  test('an invalid candidate is refused as apply refuses it: exit 2, the issues printed, nothing applied', async () => {
    const r = await remora(['apply', '--preview', '-f', await file('bad.yaml', CUT_POST.replace('methods: ["GET"]', 'methods: []'))], mesh.cliEnv)
    expect(r.code).toBe(2)
    expect(r.stdout).toContain('REMORA_ERR_POLICY_EMPTY_LIST')
    expect(r.stderr).toContain('nothing was applied')
  })

  test('POST /v1/preview needs the admin token', async () => {
    const r = await mesh.api('POST', '/v1/preview', { sources: [{ source: 'x', text: CUT_POST }] }, null)
    expect(r.status).toBe(401)
    const ok = await mesh.api('POST', '/v1/preview', { sources: [{ source: 'x', text: CUT_POST }] })
    expect(ok.status).toBe(200)
    expect((ok.json.changes as unknown[]).length).toBe(1)
  })
})

describe('remora check --replay', () => {
  test('against the policies in force: every recorded edge with the decision it got', async () => {
    const r = await remora(['check', '--replay'], mesh.cliEnv)
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines.find((l) => l.includes('shop/frontend → shop/orders POST /orders '))).toMatch(/^ALLOW {2}.*: 4 requests, .* allow by shop\/orders-allow-frontend rules\[0\]$/)
    expect(lines.find((l) => l.includes('GET /orders/{id}'))).toMatch(/^ALLOW .*2 requests.*\[approximate: the recorded template was evaluated with \{id\} = 0\]$/)
    expect(lines.find((l) => l.includes('shop/frontend → shop/payments'))).toMatch(/^DENY {3}.*: 2 requests, .* deny: no ALLOW policy matched \(1 applied: shop\/payments-allow-orders\)$/)
    expect(lines.at(-1)).toMatch(/^replayed \d+ edge\(s\) against the policies in force \(version .*\): \d+ ALLOW, 1 DENY; 0 decided otherwise than recorded$/)
  })

  test('against files alone: the edges those files would decide otherwise than recorded are marked', async () => {
    const r = await remora(['check', '--replay', '-f', await file('cut.yaml', CUT_POST), '-n', 'shop'], mesh.cliEnv)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^DENY .*shop\/frontend → shop\/orders POST \/orders .*: 4 requests, .*deny: no ALLOW policy matched .*\(recorded: ALLOW\)$/m)
    // payments has no policy in these files: allowed by default, recorded as denied.
    expect(r.stdout).toMatch(/^ALLOW .*shop\/frontend → shop\/payments POST \/charge .*allow: no ALLOW policy applies +\(recorded: DENY\)$/m)
  })
})

describe('remora graph', () => {
  test('one line per caller → callee with its counts; the denied edge is marked with its reason', async () => {
    const r = await remora(['graph', '-n', 'shop', '--since', '1h'], mesh.cliEnv)
    expect(r.code, r.stderr).toBe(0)
    const [head, ...lines] = r.stdout.trim().split('\n')
    expect(head).toMatch(/^window \S+ → \S+: 3 workloads, 3 edges$/)
    expect(lines.map((l) => l.split(/ {2,}/)[0])).toEqual(['shop/frontend → shop/orders', 'shop/frontend → shop/payments', 'shop/orders → shop/payments'])
    expect(lines[0]).toMatch(/ rps +err +0\.0% +p50 +\S+ +p99 +\S+ +mTLS +ALLOW +9 +DENY +0$/)
    expect(lines[1]).toMatch(/ALLOW +0 +DENY +2 +DENIED: deny: no ALLOW policy matched \(1 applied: shop\/payments-allow-orders\)$/)
  })

  test('--json: the model, with each edge\'s parts', async () => {
    const r = await remora(['graph', '--json'], mesh.cliEnv)
    expect(r.code).toBe(0)
    const g = JSON.parse(r.stdout) as { nodes: { id: string }[]; edges: { from: string; to: string; count: number; parts: { method: string; path: string; policy: string | null }[] }[] }
    expect(g.nodes.map((n) => n.id)).toEqual(['shop/frontend', 'shop/orders', 'shop/payments'])
    const fo = g.edges.find((e) => e.from === 'shop/frontend' && e.to === 'shop/orders')!
    expect(fo.count).toBe(9)
    expect(fo.parts.map((p) => `${p.method} ${p.path} ${p.policy}`).sort()).toEqual(['GET /orders shop/orders-allow-frontend', 'GET /orders/{id} shop/orders-allow-frontend', 'POST /orders shop/orders-allow-frontend'])
  })

  test('bad usage is exit 2; a refused token is exit 1 with the API\'s code', async () => {
    expect((await remora(['graph', '--since', 'forever'], mesh.cliEnv)).code).toBe(2)
    const r = await remora(['graph', '--token', 'remora_wrong'], mesh.cliEnv)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('REMORA_ERR_CP_UNAUTHENTICATED')
  })
})
