// Discovery from the cluster: the EndpointSlices of a Service, filtered to ready endpoints of pods
// that carry a sidecar, become a cluster <service>.<namespace> pushed to every sidecar, with the
// pods' service accounts as the identities secure naming requires, and the Service's ClusterIPs
// and TCP ports (declared protocols, target ports) beside them. Against a local API server
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
/** The Service's http port targets this one, not the sidecar's default app port. */
let web: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let inboundPort: number
let dbPort: number

/** A database stand-in: upper-cases what it reads and answers after the caller's FIN. */
const db = net.createServer({ allowHalfOpen: true }, (s) => {
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  s.on('end', () => s.end(`END:${Buffer.concat(chunks).toString().toUpperCase()}`))
})

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
const webPort = () => Number(web.address.split(':')[1])
// The slice's ports are what the Service's targetPorts resolved to on the pods, under the Service ports' names.
const slicePorts = () => [
  { name: 'api', port: 9091, protocol: 'TCP', appProtocol: 'grpc' },
  { name: 'tcp-postgres', port: dbPort, protocol: 'TCP' },
  { name: 'http', port: webPort(), protocol: 'TCP' },
  { name: 'metrics', port: 9100, protocol: 'TCP' },
  { name: 'dns', port: 53, protocol: 'UDP' },
]
const slice = (endpoints: { ip: string; pod: string; ready?: boolean }[]) => ({
  kind: 'EndpointSlice',
  metadata: { name: 'orders-api-x7k2p', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'orders-api' } },
  addressType: 'IPv4',
  ports: slicePorts(),
  endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, targetRef: { kind: 'Pod', namespace: 'shop', name: e.pod } })),
})
/** A dual-stack Service as the API server stores it: gRPC by appProtocol, Postgres by name, HTTP, an undeclared port, a named targetPort no slice resolves, and UDP. */
const service = (spec: Record<string, unknown> = {}) => ({
  metadata: { name: 'orders-api', namespace: 'shop' },
  spec: {
    type: 'ClusterIP',
    selector: { app: 'orders' },
    clusterIP: '10.96.12.34',
    clusterIPs: ['10.96.12.34', 'fd00:10:96::1234'],
    ipFamilies: ['IPv4', 'IPv6'],
    ipFamilyPolicy: 'PreferDualStack',
    ports: [
      { name: 'api', port: 9090, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' },
      { name: 'tcp-postgres', port: 5432, targetPort: dbPort, protocol: 'TCP' },
      { name: 'http', port: 80, targetPort: webPort(), protocol: 'TCP' },
      { name: 'metrics', port: 9100, targetPort: 9100, protocol: 'TCP' },
      { name: 'admin', port: 8081, targetPort: 'admin', protocol: 'TCP' },
      { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
    ],
    ...spec,
  },
})
interface DumpedCluster {
  name: string
  endpoints?: unknown
  identities?: string[]
  addresses?: string[]
  ports?: { port: number; targetPort?: number; protocol?: string; name?: string }[]
}
const cluster = (s: MeshSidecar, name: string) => (s.sidecar.configDump() as { clusters: DumpedCluster[] }).clusters.find((c) => c.name === name)

/** Sends `data`, half-closes, and reads until the other side closes. */
function exchange(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let reply = ''
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
    s.on('data', (c: Buffer) => (reply += c.toString()))
    s.on('error', reject)
    s.on('close', () => resolve(reply))
    s.on('connect', () => s.end(data))
  })
}

beforeAll(async () => {
  app = await startUpstream()
  web = await startUpstream()
  await new Promise<void>((r) => db.listen(0, '127.0.0.1', r))
  dbPort = (db.address() as net.AddressInfo).port
  api = await startFakeKubeApi()
  api.putCore('services', service())
  api.putCore('pods', pod('orders-1', 'orders', true))
  api.putCore('pods', pod('legacy-1', 'legacy', false))
  api.putCore('pods', pod('orders-2', 'orders', true))
  // orders-1 is the running sidecar below (127.0.0.1); legacy-1 has no sidecar; orders-2 is not ready.
  api.apply(SLICES, slice([{ ip: '127.0.0.1', pod: 'orders-1' }, { ip: '127.0.0.2', pod: 'legacy-1' }, { ip: '127.0.0.3', pod: 'orders-2', ready: false }]))
  inboundPort = await freePort()
  const client = createKubeClient({ server: api.url })
  cp = await startTestControlPlane({ discoveryFeed: createKubernetesDiscoveryFeed(client, { inboundPort, retryMs: 50 }) })
  orders = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'orders', app: app.address, token: await cp.token('orders'), inboundPort })
  // The app reaches the Service's Postgres port at a local bind port (no interception in this test).
  frontend = await startMeshSidecar({
    addresses: [cp.address],
    caPem: cp.cp.caPem,
    serviceAccount: 'frontend',
    app: '127.0.0.1:1',
    token: await cp.token('frontend'),
    extra: { outbound: { port: 0, bind: '127.0.0.1', listeners: [{ port: 0, cluster: 'orders-api.shop', servicePort: 5432 }] } } as never,
  })
}, 60_000)
afterAll(async () => {
  for (const s of [orders, frontend]) await s?.close()
  await cp?.close()
  await app?.close()
  await web?.close()
  await new Promise((r) => db.close(r))
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

  test("the Service's ClusterIPs (IPv4 and IPv6) and TCP ports ride in the cluster: protocols by appProtocol and name, a named targetPort resolved through the slice, UDP left out", async () => {
    await until(() => cluster(frontend, 'orders-api.shop') !== undefined, 10_000, 'the orders-api cluster')
    const c = cluster(frontend, 'orders-api.shop')!
    expect(c.addresses).toEqual(['10.96.12.34', 'fd00:10:96::1234'])
    expect(c.ports).toEqual([
      { port: 9090, targetPort: 9091, protocol: 'grpc', name: 'api' },
      { port: 5432, targetPort: dbPort, protocol: 'tcp', name: 'tcp-postgres' },
      { port: 80, targetPort: webPort(), protocol: 'http', name: 'http' },
      { port: 9100, targetPort: 9100, name: 'metrics' }, // undeclared: detected by the sidecar
      { port: 8081, name: 'admin' }, // named targetPort no slice lists: left out
    ])
    // Endpoints stay the sidecars' inbound addresses, never the Service's ports.
    expect(c.endpoints).toEqual([`127.0.0.1:${inboundPort}`])
    // The sidecar's own registration (a cluster of its own name) has neither.
    await until(() => cluster(frontend, 'orders.shop') !== undefined, 10_000, "the orders sidecar's own cluster")
    expect(cluster(frontend, 'orders.shop')).not.toHaveProperty('ports')
    expect(cluster(frontend, 'orders.shop')).not.toHaveProperty('addresses')
  })

  test("the mesh delivers to the Service's targetPort, not the sidecar's default app port: HTTP to orders-api.shop:80 and TCP to port 5432", async () => {
    await until(() => cluster(frontend, 'orders-api.shop')?.ports !== undefined, 10_000, 'the ports')
    const [appHits, webHits] = [app.hits, web.hits]
    const r = await plainRequest(frontend.outbound, { path: '/orders', headers: { host: 'orders-api.shop:80' } })
    expect(r.status).toBe(200)
    expect(web.hits).toBe(webHits + 1)
    expect(app.hits).toBe(appHits)
    const [local] = frontend.sidecar.listenerPorts
    expect(await exchange(local!, 'select 1')).toBe('END:SELECT 1')
  })

  test('a changed Service is pushed (headless: no addresses; a port added), and a deleted one leaves the endpoints as they were', async () => {
    api.putCore('services', service({ clusterIP: 'None', clusterIPs: ['None'], ports: [...service().spec.ports, { name: 'h2c-stream', port: 7070, targetPort: 7070, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' }] }))
    await until(() => cluster(frontend, 'orders-api.shop')?.ports?.length === 6, 10_000, 'the added port')
    const c = cluster(frontend, 'orders-api.shop')!
    expect(c.addresses).toBeUndefined()
    expect(c.ports!.at(-1)).toEqual({ port: 7070, targetPort: 7070, protocol: 'http2', name: 'h2c-stream' })
    api.deleteCore('services', 'shop', 'orders-api')
    await until(() => cluster(frontend, 'orders-api.shop')?.ports === undefined, 10_000, 'the ports gone with the Service')
    expect(cluster(frontend, 'orders-api.shop')!.endpoints).toEqual([`127.0.0.1:${inboundPort}`])
    api.putCore('services', service())
    await until(() => cluster(frontend, 'orders-api.shop')?.addresses !== undefined, 10_000, 'back with the Service')
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
