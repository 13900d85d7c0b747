// `remora control-plane --source kubernetes`, in process: the control plane's policy set comes from
// the CRDs of a local API server speaking the real list/watch protocol (test/helpers/fake-kube-api.ts),
// and sidecars connected to it enforce what `kubectl apply` created; an invalid policy gets
// `Invalid` status and never reaches them; `remora get/status` tell the truth and `apply` is
// refused. Sidecars may bootstrap with a projected service-account token checked by TokenReview.
import { X509Certificate } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createCsr, generateKeyPair } from '../../control-plane/ca/index.js'
import { createKubeClient, createKubernetesPolicyFeed, createKubernetesTokenReviewer } from '../../control-plane/kubernetes/index.js'
import { postJson, rmDir, startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js'
import { plainRequest, until } from '../helpers/mesh.js'
import { runRemora } from '../helpers/process.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const GROUP = 'security.remora.dev/v1'
const allowOnly = (name: string, sa: string) => ({
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'orders' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: [`cluster.local/ns/shop/sa/${sa}`] } }] }] },
})

let api: FakeKubeApi
let cp: TestControlPlane
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let batch: MeshSidecar
let dir: string

beforeAll(async () => {
  api = await startFakeKubeApi()
  // Already in the cluster before the control plane starts: the first snapshot carries it.
  api.apply(GROUP, allowOnly('orders-allowlist', 'frontend'))
  api.tokens.set('projected-orders', { username: 'system:serviceaccount:shop:orders', audiences: ['remora'], pod: 'orders-7d4f-x2' })
  api.tokens.set('projected-batch', { username: 'system:serviceaccount:shop:batch', audiences: ['remora'] })
  api.tokens.set('projected-for-the-api', { username: 'system:serviceaccount:shop:orders', audiences: ['https://kubernetes.default.svc'] })
  const client = createKubeClient({ server: api.url })
  cp = await startTestControlPlane({ policyFeed: createKubernetesPolicyFeed(client, { retryMs: 50 }), tokenReviewer: createKubernetesTokenReviewer(client) })
  app = await startUpstream()
  dir = await mkdtemp(join(tmpdir(), 'remora-kube-cp-'))
  // orders bootstraps with its projected service-account token (TokenReview), the callers with join tokens.
  orders = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'orders', app: app.address, token: 'projected-orders' })
  frontend = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'frontend', app: '127.0.0.1:1', token: await cp.token('frontend') })
  batch = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'batch', app: '127.0.0.1:1', token: await cp.token('batch') })
  await until(() => [frontend, batch].every((s) => (s.sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((c) => c.name === 'orders.shop')), 15_000, 'orders cluster everywhere')
}, 60_000)

afterAll(async () => {
  for (const s of [orders, frontend, batch]) await s?.close()
  await cp?.close()
  await app?.close()
  await api?.close()
  if (dir) await rmDir(dir)
})

const callOrders = (from: MeshSidecar) => plainRequest(from.outbound, { path: '/orders', headers: { host: 'orders.shop' } })
const everywhere = (version: string | null) => until(() => version !== null && [orders, frontend, batch].every((s) => s.client.lastGoodVersion === version), 10_000, `version ${version} everywhere`)
const status = (name: string) => api.get(GROUP, 'authorizationpolicies', 'shop', name)?.status
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = runRemora(args, { env: cp.cliEnv })
  const code = await c.exited
  return { code, stdout: c.stdout, stderr: c.stderr }
}

describe('control plane with --source kubernetes', () => {
  test('the policy present at start is in the first snapshot: frontend allowed, batch denied', async () => {
    await everywhere(cp.cp.version)
    expect((await callOrders(frontend)).status).toBe(200)
    const denied = await callOrders(batch)
    expect(denied.status).toBe(403)
    expect(denied.headers['x-remora-denied-by']).toMatch(/no ALLOW policy matched/)
  })

  test('a policy modified and deleted through the watch reaches the connected sidecars', async () => {
    const before = cp.cp.version
    api.apply(GROUP, allowOnly('orders-allowlist', 'batch'))
    await until(() => cp.cp.version !== before, 10_000, 'a new snapshot')
    await everywhere(cp.cp.version)
    expect((await callOrders(batch)).status).toBe(200)
    expect((await callOrders(frontend)).status).toBe(403)

    const modified = cp.cp.version
    api.delete(GROUP, 'AuthorizationPolicy', 'shop', 'orders-allowlist')
    await until(() => cp.cp.version !== modified, 10_000, 'the snapshot without it')
    await everywhere(cp.cp.version)
    expect((await callOrders(frontend)).status).toBe(200)
    expect((await callOrders(batch)).status).toBe(200)
    // Put back for the next tests, and wait until every sidecar enforces it again (the status can
    // say Valid before the snapshot that carries it is published).
    const without = cp.cp.version
    api.apply(GROUP, allowOnly('orders-allowlist', 'frontend'))
    await until(() => status('orders-allowlist')?.validation === 'Valid', 10_000, 'Valid again')
    await until(() => cp.cp.version !== without, 10_000, 'the snapshot with it again')
    await everywhere(cp.cp.version)
  })

  test('an invalid policy gets Invalid status, never reaches a sidecar, and shows in remora status', async () => {
    await everywhere(cp.cp.version)
    expect((await callOrders(batch)).status).toBe(403)
    const version = cp.cp.version
    const bad = { kind: 'AuthorizationPolicy', metadata: { name: 'deny-lan', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }] } }
    api.apply(GROUP, bad)
    await until(() => status('deny-lan')?.validation !== undefined, 10_000, 'a status for the invalid policy')
    expect(status('deny-lan').validation).toMatch(/^Invalid: spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]: /)
    expect(cp.cp.version).toBe(version)
    for (const s of [orders, frontend, batch]) expect(JSON.stringify(s.sidecar.configDump())).not.toContain('deny-lan')
    expect((await callOrders(frontend)).status).toBe(200)

    const st = await cli(['status', '-o', 'json'])
    expect(st.code).toBe(0)
    const errors = (JSON.parse(st.stdout) as { policyErrors: string[] }).policyErrors
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/^kubernetes:security\.remora\.dev\/v1\/authorizationpolicies\/shop\/deny-lan spec\.rules.*REMORA_ERR_POLICY_BAD_IP/)
    api.delete(GROUP, 'AuthorizationPolicy', 'shop', 'deny-lan')
  })

  test('remora get lists what the sidecars enforce; remora apply and delete are refused with a pointer to kubectl', async () => {
    const got = await cli(['get', 'authorizationpolicies', '-n', 'shop'])
    expect(got.stderr).toBe('')
    expect(got.stdout).toMatch(/AuthorizationPolicy\s+shop\s+orders-allowlist/)

    await writeFile(join(dir, 'p.yaml'), `apiVersion: security.remora.dev/v1\nkind: AuthorizationPolicy\nmetadata: { name: extra, namespace: shop }\nspec: { action: DENY, rules: [{ to: [{ operation: { paths: ["/admin"] } }] }] }\n`)
    const applied = await cli(['apply', '-f', join(dir, 'p.yaml')])
    expect(applied.code).toBe(1)
    expect(applied.stderr).toContain('REMORA_ERR_CP_POLICY_READ_ONLY')
    expect(applied.stderr).toContain('kubectl')
    const deleted = await cli(['delete', 'authorizationpolicy', 'orders-allowlist', '-n', 'shop'])
    expect(deleted.code).toBe(1)
    expect(deleted.stderr).toContain('REMORA_ERR_CP_POLICY_READ_ONLY')
    expect(await cp.store.list('policies/')).toEqual(new Map())
  })
})

describe('bootstrap with a projected service-account token (TokenReview, audience remora)', () => {
  async function csrFor(id: string): Promise<string> {
    const { keys } = await generateKeyPair()
    return createCsr(keys, id)
  }

  test("the sidecar that bootstrapped with its token holds a certificate for exactly the token's namespace/service account", async () => {
    // The stream's identity is read from the client certificate the token bought.
    const st = await cli(['status', '-o', 'json'])
    const ids = (JSON.parse(st.stdout) as { sidecars: { identity: string; connected: boolean }[] }).sidecars.filter((s) => s.connected).map((s) => s.identity)
    expect(ids).toContain('spiffe://cluster.local/ns/shop/sa/orders')
  })

  test("a token's CSR gets a certificate whose only URI SAN is the token's service account", async () => {
    const r = await postJson(cp.address, '/v1/bootstrap', { token: 'projected-batch', csr: await csrFor('spiffe://cluster.local/ns/shop/sa/batch') }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(200)
    expect(new X509Certificate(r.json.certPem as string).subjectAltName).toBe('URI:spiffe://cluster.local/ns/shop/sa/batch')
  })

  test('a token asking for another identity (batch token, CSR for orders) is refused', async () => {
    const r = await postJson(cp.address, '/v1/bootstrap', { token: 'projected-batch', csr: await csrFor('spiffe://cluster.local/ns/shop/sa/orders') }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(403)
    expect(r.json.error?.code).toBe('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH')
  })

  test('a token for another audience, or one the API server does not know, is refused', async () => {
    for (const token of ['projected-for-the-api', 'not-a-token-anyone-issued']) {
      const r = await postJson(cp.address, '/v1/bootstrap', { token, csr: await csrFor('spiffe://cluster.local/ns/shop/sa/orders') }, { caPem: cp.cp.caPem })
      expect(r.status).toBe(401)
      expect(r.json.error?.code).toBe('REMORA_ERR_CP_TOKEN_INVALID')
      expect(JSON.stringify(r.json)).not.toContain(token)
    }
    expect(JSON.stringify(cp.logger.lines)).not.toContain('projected-for-the-api')
  })
})
