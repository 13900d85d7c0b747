// The Kubernetes source against a local API server that speaks the real list/watch protocol
// (test/helpers/fake-kube-api.ts), its policies fed to a running sidecar: created, modified and
// deleted policies reach the sidecar; an invalid one gets `Invalid` status and never does; a watch
// that ends with 410 Gone re-lists without losing an event.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createKubeClient, KubernetesPolicySource, loadKubeConnection, reviewServiceAccountToken, type KubeClient } from '../../control-plane/kubernetes/index.js'
import type { PolicyDocument } from '../../proxy/policy/index.js'
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js'
import { mtlsRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { createTestPki, type Leaf, type TestPki } from '../helpers/pki.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const GROUP = 'security.remora.dev/v1'
const allowOnly = (name: string, sa: string, extra: Record<string, unknown> = {}) => ({
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'orders' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: [`cluster.local/ns/shop/sa/${sa}`] } }] }], ...extra },
})

let pki: TestPki
let app: Upstream
let orders: TestSidecar
let frontend: Leaf
let batch: Leaf

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  orders = await startSidecar({ pki, serviceAccount: 'orders', app: app.address })
  frontend = await pki.issue('spiffe://cluster.local/ns/shop/sa/frontend')
  batch = await pki.issue('spiffe://cluster.local/ns/shop/sa/batch')
})
afterAll(async () => {
  await orders?.close()
  await app?.close()
})

let api: FakeKubeApi
let client: KubeClient
let source: KubernetesPolicySource | null
let sets: PolicyDocument[][]

beforeEach(async () => {
  api = await startFakeKubeApi()
  client = createKubeClient({ server: api.url })
  sets = []
  source = null
})
afterEach(async () => {
  await source?.close()
  await api.close()
})

/** The source wired into the running sidecar, as the control plane's push would deliver it. */
async function startSource(istio: boolean | 'auto' = 'auto'): Promise<KubernetesPolicySource> {
  source = await KubernetesPolicySource.start(client, {
    trustDomain: 'cluster.local',
    istio,
    retryMs: 50,
    onPolicies: (p) => {
      sets.push(p)
      orders.sidecar.applyPolicies(p)
    },
  })
  return source
}

const names = (): string[] => (sets.at(-1) ?? []).map((p) => `${p.kind}/${p.metadata.name}`)
const status = (name: string) => api.get(GROUP, 'authorizationpolicies', 'shop', name)?.status
async function allowed(who: Leaf): Promise<boolean> {
  const r = await mtlsRequest(orders.inbound, who, pki.caPem, { path: '/orders' })
  if (r.refused) throw new Error(`refused: ${r.error}`)
  return r.status === 200
}

describe('the Kubernetes source', () => {
  test('a policy created, modified and deleted through the watch reaches the running sidecar', async () => {
    await startSource()
    expect(names()).toEqual([])
    expect(await allowed(batch)).toBe(true) // no policy: allowed by default

    api.apply(GROUP, allowOnly('orders-allowlist', 'frontend'))
    await until(() => names().includes('AuthorizationPolicy/orders-allowlist'), 5000, 'the created policy')
    expect(await allowed(frontend)).toBe(true)
    expect(await allowed(batch)).toBe(false)
    await until(() => status('orders-allowlist')?.validation === 'Valid', 5000, 'Valid status')
    expect(status('orders-allowlist')).toMatchObject({ observedGeneration: 1, conditions: [{ type: 'Valid', status: 'True' }] })

    api.apply(GROUP, allowOnly('orders-allowlist', 'batch'))
    await until(() => JSON.stringify(sets.at(-1)).includes('sa/batch'), 5000, 'the modified policy')
    expect(await allowed(batch)).toBe(true)
    expect(await allowed(frontend)).toBe(false)
    await until(() => status('orders-allowlist')?.observedGeneration === 2, 5000, 'status for generation 2')

    api.delete(GROUP, 'AuthorizationPolicy', 'shop', 'orders-allowlist')
    await until(() => names().length === 0, 5000, 'the deleted policy gone')
    expect(await allowed(frontend)).toBe(true)
    expect(await allowed(batch)).toBe(true)
  })

  test('an invalid policy gets Invalid: <reason> in its status and never reaches the sidecar; fixed, it does', async () => {
    api.apply(GROUP, allowOnly('orders-allowlist', 'frontend'))
    await startSource()
    await until(() => names().length === 1, 5000, 'the valid policy')
    // The CRD schema cannot judge a CIDR: the validator does.
    const bad = allowOnly('deny-lan', 'batch')
    bad.spec = { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }] } as never
    api.apply(GROUP, bad)
    await until(() => status('deny-lan')?.validation !== undefined, 5000, 'a status for the invalid policy')
    expect(status('deny-lan').validation).toMatch(/^Invalid: spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]: /)
    expect(status('deny-lan').errors[0]).toMatch(/REMORA_ERR_POLICY_BAD_IP/)
    expect(status('deny-lan').conditions[0]).toMatchObject({ type: 'Valid', status: 'False', reason: 'ValidationFailed' })
    expect(names()).toEqual(['AuthorizationPolicy/orders-allowlist'])
    expect(await allowed(frontend)).toBe(true)

    bad.spec = { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }] } as never
    api.apply(GROUP, bad)
    await until(() => names().includes('AuthorizationPolicy/deny-lan'), 5000, 'the fixed policy')
    await until(() => status('deny-lan')?.validation === 'Valid', 5000, 'Valid after the fix')
  })

  test('our own status writes do not loop: one patch per verdict and generation', async () => {
    api.apply(GROUP, allowOnly('orders-allowlist', 'frontend'))
    await startSource()
    await until(() => status('orders-allowlist')?.validation === 'Valid', 5000, 'Valid status')
    // No fixed wait: a later policy is a marker. The watch delivers events in order, so by the time
    // the marker has its status, the MODIFIED event of our own first patch has been handled too;
    // a loop would have patched orders-allowlist again by then.
    api.apply(GROUP, allowOnly('marker', 'batch'))
    await until(() => status('marker')?.validation === 'Valid', 5000, 'the marker policy Valid')
    await until(() => names().includes('AuthorizationPolicy/marker'), 5000, 'the marker in a policy set')
    expect(api.statusPatches.filter((p) => p.path.endsWith('/orders-allowlist/status'))).toHaveLength(1)
    expect(api.statusPatches.filter((p) => p.path.endsWith('/marker/status'))).toHaveLength(1)
    expect(sets).toHaveLength(2)
  })

  test('a watch that ends with 410 Gone re-lists, and what changed meanwhile is not lost', async () => {
    api.apply(GROUP, allowOnly('old', 'frontend'))
    await startSource()
    await until(() => names().includes('AuthorizationPolicy/old'), 5000, 'the first policy')
    const listsBefore = source!.lists
    // The watch stalls; meanwhile one policy is deleted and one created, and etcd compacts.
    api.pauseWatches()
    api.delete(GROUP, 'AuthorizationPolicy', 'shop', 'old')
    api.apply(GROUP, allowOnly('new', 'batch'))
    api.compact()
    api.expireWatches()
    await until(() => names().join() === 'AuthorizationPolicy/new', 5000, 'the re-listed state')
    // One re-list per watched resource (the three kinds), each after its own 410 (a watch that was
    // reconnecting meets the compaction when it opens: 410 as well).
    await until(() => source!.lists >= listsBefore + 3, 5000, 'every resource re-listed')
    expect(source!.lists).toBe(listsBefore + 3)
    expect(await allowed(batch)).toBe(true)
    expect(await allowed(frontend)).toBe(false)
  })

  test('a watch that simply ends is resumed from the last resourceVersion, without a re-list', async () => {
    await startSource()
    const listsBefore = source!.lists
    const before = api.watchRequests.length
    api.endWatches()
    await until(() => api.watchRequests.length >= before + 3, 5000, 'the watches re-opened')
    api.apply(GROUP, allowOnly('after-reconnect', 'frontend'))
    await until(() => names().includes('AuthorizationPolicy/after-reconnect'), 5000, 'an event after the reconnect')
    expect(source!.lists).toBe(listsBefore)
    expect(api.watchRequests.slice(before).every((u) => /resourceVersion=\d+/.test(u) && !u.includes('resourceVersion=0'))).toBe(true)
  })

  test('security.istio.io policies are read when that API is served; their status is left to Istio', async () => {
    api.serveGroup('security.istio.io/v1')
    api.apply('security.istio.io/v1', allowOnly('istio-allowlist', 'frontend'))
    await startSource()
    await until(() => names().includes('AuthorizationPolicy/istio-allowlist'), 5000, 'the Istio policy')
    expect(await allowed(batch)).toBe(false)
    // A remora policy applied after it is the marker: once it has its status, the Istio policy's
    // events were handled long before, and the only status patch is the marker's.
    api.apply(GROUP, allowOnly('marker', 'batch'))
    await until(() => status('marker')?.validation === 'Valid', 5000, 'the remora marker policy Valid')
    expect(api.statusPatches.map((p) => p.path.split('/').slice(-2).join('/'))).toEqual(['marker/status'])
  })

  test('TokenReview: a projected token for our audience names its service account; others are refused', async () => {
    api.tokens.set('tok-frontend', { username: 'system:serviceaccount:shop:frontend', audiences: ['remora'], pod: 'frontend-7d4b9c8f6d-x2x9k' })
    expect(await reviewServiceAccountToken(client, 'tok-frontend', 'remora')).toEqual({ ok: true, namespace: 'shop', serviceAccount: 'frontend', podName: 'frontend-7d4b9c8f6d-x2x9k' })
    expect(await reviewServiceAccountToken(client, 'tok-frontend', 'other')).toMatchObject({ ok: false })
    expect(await reviewServiceAccountToken(client, 'forged', 'remora')).toMatchObject({ ok: false, reason: expect.stringMatching(/^token refused/) })
  })

  test('credentials come from a kubeconfig through @kubernetes/client-node (a bearer token here)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'remora-kubeconfig-'))
    const file = join(dir, 'config')
    await writeFile(
      file,
      `apiVersion: v1\nkind: Config\nclusters: [{ name: fake, cluster: { server: "${api.url}", insecure-skip-tls-verify: true } }]\nusers: [{ name: cp, user: { token: sa-token-123 } }]\ncontexts: [{ name: fake, context: { cluster: fake, user: cp } }]\ncurrent-context: fake\n`,
    )
    const c = createKubeClient(await loadKubeConnection({ kubeconfig: file }))
    expect((await c.request('GET', `/apis/${GROUP}/authorizationpolicies`)).status).toBe(200)
    expect(api.authorizations.at(-1)).toBe('Bearer sa-token-123')
  })
})

