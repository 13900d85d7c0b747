// Discovery from the cluster: the EndpointSlices of a Service, filtered to ready endpoints of pods
// that carry a sidecar, become a cluster <service>.<namespace> pushed to every sidecar, with the
// pods' service accounts as the identities secure naming requires. Against a local API server
// speaking list/watch (test/helpers/fake-kube-api.ts) and a real control plane and sidecars.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createKubeClient, createKubernetesDiscoveryFeed } from '../../control-plane/kubernetes/index.js'
import { startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js'
import { plainRequest, until } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const SLICES = 'discovery.k8s.io/v1'
let api: FakeKubeApi
let cp: TestControlPlane
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let inboundPort: number

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const p = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return p
}

const pod = (name: string, sa: string, injected: boolean) => ({
  metadata: { name, namespace: 'shop', ...(injected ? { annotations: { 'remora.dev/status': '{"version":"0.1.0"}' } } : {}) },
  spec: { serviceAccountName: sa },
  status: { phase: 'Running' },
})
const slice = (endpoints: { ip: string; pod: string; ready?: boolean }[]) => ({
  kind: 'EndpointSlice',
  metadata: { name: 'orders-api-x7k2p', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'orders-api' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, targetRef: { kind: 'Pod', namespace: 'shop', name: e.pod } })),
})
const cluster = (s: MeshSidecar, name: string) => (s.sidecar.configDump() as { clusters: { name: string; endpoints?: unknown; identities?: string[] }[] }).clusters.find((c) => c.name === name)

beforeAll(async () => {
  api = await startFakeKubeApi()
  api.putCore('pods', pod('orders-1', 'orders', true))
  api.putCore('pods', pod('legacy-1', 'legacy', false))
  api.putCore('pods', pod('orders-2', 'orders', true))
  // orders-1 is the running sidecar below (127.0.0.1); legacy-1 has no sidecar; orders-2 is not ready.
  api.apply(SLICES, slice([{ ip: '127.0.0.1', pod: 'orders-1' }, { ip: '127.0.0.2', pod: 'legacy-1' }, { ip: '127.0.0.3', pod: 'orders-2', ready: false }]))
  inboundPort = await freePort()
  const client = createKubeClient({ server: api.url })
  cp = await startTestControlPlane({ discoveryFeed: createKubernetesDiscoveryFeed(client, { inboundPort, retryMs: 50 }) })
  app = await startUpstream()
  orders = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'orders', app: app.address, token: await cp.token('orders'), inboundPort })
  frontend = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'frontend', app: '127.0.0.1:1', token: await cp.token('frontend') })
}, 60_000)
afterAll(async () => {
  for (const s of [orders, frontend]) await s?.close()
  await cp?.close()
  await app?.close()
  await api?.close()
})

describe('discovery from EndpointSlices and Pods', () => {
  test("a Service's ready endpoints of injected pods become a cluster, and a call by the Service's name reaches the app over mTLS", async () => {
    await until(() => cluster(frontend, 'orders-api.shop') !== undefined, 10_000, 'the orders-api cluster')
    const c = cluster(frontend, 'orders-api.shop')!
    expect(JSON.stringify(c.endpoints)).toContain(`127.0.0.1:${inboundPort}`)
    expect(JSON.stringify(c.endpoints)).not.toMatch(/127\.0\.0\.[23]/) // no sidecar; not ready
    expect(c.identities).toEqual(['spiffe://cluster.local/ns/shop/sa/orders'])
    const hits = app.hits
    const r = await plainRequest(frontend.outbound, { path: '/orders', headers: { host: 'orders-api.shop' } })
    expect(r.status).toBe(200)
    expect(app.hits).toBe(hits + 1)
  })

  test('an endpoint that turns not ready, or a slice deleted, leaves the cluster', async () => {
    api.apply(SLICES, slice([{ ip: '127.0.0.1', pod: 'orders-1', ready: false }]))
    await until(() => cluster(frontend, 'orders-api.shop') === undefined, 10_000, 'the cluster gone with its last endpoint')
    api.apply(SLICES, slice([{ ip: '127.0.0.1', pod: 'orders-1' }]))
    await until(() => cluster(frontend, 'orders-api.shop') !== undefined, 10_000, 'back when ready')
    api.delete(SLICES, 'EndpointSlice', 'shop', 'orders-api-x7k2p')
    await until(() => cluster(frontend, 'orders-api.shop') === undefined, 10_000, 'gone with the slice')
    // The sidecar's own registration is untouched.
    expect(cluster(frontend, 'orders.shop')).toBeDefined()
  })
})
