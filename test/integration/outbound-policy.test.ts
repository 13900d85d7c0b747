// The outbound traffic policy from the control plane (mesh-wide) reaches every sidecar in its
// snapshot; a sidecar's own setting wins; /config_dump says which is in force and where it came from.
import { afterAll, beforeAll, expect, test } from 'vitest'
import { until } from '../helpers/mesh.js'
import { startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'

let cp: TestControlPlane
let plain: MeshSidecar
let own: MeshSidecar

type Dump = { version: string | null; outboundTrafficPolicy: { mode: string; allowedHosts: string[]; source: string } }

beforeAll(async () => {
  cp = await startTestControlPlane({ outboundTrafficPolicy: { mode: 'REGISTRY_ONLY', allowedHosts: ['api.example.com'] } })
  plain = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'orders', app: '127.0.0.1:1', token: await cp.token('orders') })
  own = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'batch', app: '127.0.0.1:1', token: await cp.token('batch'), extra: { outbound: { port: 0, bind: '127.0.0.1', trafficPolicy: { mode: 'ALLOW_ANY', allowedHosts: [] } } } })
  await until(() => (plain.sidecar.configDump() as Dump).version !== null && (own.sidecar.configDump() as Dump).version !== null, 10_000, 'first snapshots')
})

afterAll(async () => {
  await own?.close()
  await plain?.close()
  await cp?.close()
})

test('the mesh-wide REGISTRY_ONLY arrives in the snapshot', () => {
  expect((plain.sidecar.configDump() as Dump).outboundTrafficPolicy).toEqual({ mode: 'REGISTRY_ONLY', allowedHosts: ['api.example.com'], source: 'control-plane' })
})

test("a sidecar's own setting wins over the mesh's", () => {
  expect((own.sidecar.configDump() as Dump).outboundTrafficPolicy).toEqual({ mode: 'ALLOW_ANY', allowedHosts: [], source: 'sidecar' })
})

test('a policy-only change keeps the mesh setting', () => {
  plain.sidecar.applyPolicies([])
  expect((plain.sidecar.configDump() as Dump).outboundTrafficPolicy.source).toBe('control-plane')
})
