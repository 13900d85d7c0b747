// `remora suggest` against a real mesh: the sidecars served traffic under broad policies (orders
// takes any mesh caller, payments anything from shop, batch is denied by a DENY policy) and
// reported it. The suggestion validates with `remora validate`; applied in place of the broad ALLOW
// policies (what its diff says to do), it allows exactly the observed calls and denies new ones.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { remora, startTrafficMesh, type Service, type TrafficMesh } from '../helpers/traffic-mesh.js'

const BROAD = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-mesh, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules: [{ from: [{ source: { principals: ["*"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-shop, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  rules: [{ from: [{ source: { namespaces: ["shop"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-batch, namespace: shop }
spec:
  action: DENY
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/batch"] } }] }]
`

/** What the mesh did while it was recorded: caller, callee, method, path, and the status it got. */
const OBSERVED: [Service, Service, string, string, number][] = [
  ['frontend', 'orders', 'GET', '/orders', 200],
  ['frontend', 'orders', 'GET', '/orders/17', 200],
  ['frontend', 'orders', 'GET', '/orders/4711', 200],
  ['frontend', 'orders', 'POST', '/orders', 200],
  ['orders', 'payments', 'POST', '/charge', 200],
  ['orders', 'payments', 'GET', '/health', 200],
  ['batch', 'orders', 'GET', '/orders', 403],
]

let mesh: TrafficMesh
let dir: string
let suggested: { code: number; stdout: string; stderr: string }
let file: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-suggest-'))
  mesh = await startTrafficMesh()
  await mesh.apply(BROAD)
  for (const [from, to, method, path, status] of OBSERVED) expect(await mesh.call(from, to, path, method), `${from} → ${to} ${method} ${path}`).toBe(status)
  await mesh.report()
  suggested = await remora(['suggest', '-n', 'shop'], mesh.cliEnv)
  file = join(dir, 'suggested.yaml')
  await writeFile(file, suggested.stdout)
}, 90_000)

afterAll(async () => {
  await mesh?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('remora suggest', () => {
  test('one ALLOW policy per workload that served traffic, valid for remora validate, with the evidence as comments', async () => {
    expect(suggested.code, suggested.stderr).toBe(0)
    const docs = parseAllDocuments(suggested.stdout).map((d) => d.toJS() as { metadata: { name: string }; spec: { selector: unknown; action: string } })
    expect(docs.map((d) => d.metadata.name)).toEqual(['orders-observed', 'payments-observed'])
    expect(docs[0]!.spec).toMatchObject({ action: 'ALLOW', selector: { matchLabels: { app: 'orders' } } })
    expect(suggested.stdout).toContain('# spiffe://cluster.local/ns/shop/sa/frontend: 4 requests (HTTP), last seen ')
    expect(suggested.stdout).toContain('# GET /orders/{id}: 2 requests, last seen ')
    expect(suggested.stdout).toContain('# denied and left out: spiffe://cluster.local/ns/shop/sa/batch GET /orders: 1 request')
    const v = await remora(['validate', '-f', file], mesh.cliEnv)
    expect(v.code, v.stdout + v.stderr).toBe(0)
    expect(v.stdout.trim()).toBe('valid: 2 AuthorizationPolicy')
  })

  test('the diff: what it adds, the broad ALLOW policies beside it to delete, the DENY that stays', () => {
    expect(suggested.stderr).toContain('adds shop/orders-observed (1 rule) for shop/orders')
    expect(suggested.stderr).toContain('beside it, in force for orders: shop/orders-allow-mesh (ALLOW policies add up: delete it after applying for least privilege)')
    expect(suggested.stderr).toContain('beside it, in force for orders: shop/deny-batch (DENY: stays in force and still decides first)')
    expect(suggested.stderr).toContain('beside it, in force for payments: shop/payments-allow-shop (ALLOW policies add up')
  })

  test('applied in place of the broad ALLOW policies, it allows exactly the observed traffic and denies a new edge', async () => {
    const before = await remora(['apply', '--preview', '-f', file], mesh.cliEnv)
    expect(before.code).toBe(0)
    expect(before.stdout).toMatch(/^preview: 0 edge\(s\) newly denied/m) // it allows all that was allowed
    const applied = await remora(['apply', '-f', file], mesh.cliEnv)
    expect(applied.code, applied.stderr).toBe(0)
    for (const name of ['orders-allow-mesh', 'payments-allow-shop']) expect((await remora(['delete', 'authorizationpolicy', name, '-n', 'shop'], mesh.cliEnv)).code).toBe(0)
    const version = String((await mesh.api('GET', '/v1/status')).json.version)
    const { until } = await import('../helpers/mesh.js')
    await until(() => (['frontend', 'orders', 'payments', 'batch'] as const).every((s) => mesh.sidecars[s].client.lastGoodVersion === version), 15_000, 'the least-privilege set everywhere')

    for (const [from, to, method, path, status] of OBSERVED) expect(await mesh.call(from, to, path.replace('4711', '99'), method), `${from} → ${to} ${method} ${path}`).toBe(status)
    const NEW: [Service, Service, string, string][] = [
      ['frontend', 'orders', 'DELETE', '/orders/17'],
      ['frontend', 'orders', 'POST', '/orders/17'],
      ['frontend', 'orders', 'GET', '/orders/17/items'],
      ['frontend', 'payments', 'POST', '/charge'],
      ['payments', 'orders', 'GET', '/orders'],
      ['orders', 'payments', 'POST', '/refund'],
    ]
    const hits = mesh.apps.orders.hits + mesh.apps.payments.hits
    for (const [from, to, method, path] of NEW) expect(await mesh.call(from, to, path, method), `new edge ${from} → ${to} ${method} ${path}`).toBe(403)
    expect(mesh.apps.orders.hits + mesh.apps.payments.hits).toBe(hits)
  })

  test('--for one workload and --dry-run-first: the dry-run annotation on its one policy', async () => {
    const r = await remora(['suggest', '-n', 'shop', '--for', 'payments', '--dry-run-first'], mesh.cliEnv)
    expect(r.code, r.stderr).toBe(0)
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { metadata: { name: string; annotations?: Record<string, string> } })
    expect(docs).toEqual([expect.objectContaining({ metadata: { name: 'payments-observed', namespace: 'shop', annotations: { 'istio.io/dry-run': 'true' } } })])
  })

  test('a namespace without recorded traffic: nothing to suggest, exit 1', async () => {
    const r = await remora(['suggest', '-n', 'nowhere'], mesh.cliEnv)
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('no traffic into nowhere was recorded')
  })
})
