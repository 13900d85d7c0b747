import { afterAll, expect, test } from 'vitest'
import { until } from '../helpers/mesh.js'
import { startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'

let cp: TestControlPlane
const fleet: MeshSidecar[] = []

afterAll(async () => {
  for (const s of fleet) await s.close()
  await cp?.close()
})

test('discovery is debounced: five sidecars joining together cause one or two snapshots, not one each, and all converge on the last', async () => {
  cp = await startTestControlPlane({ pushDebounceMs: 1000, pushDebounceMaxMs: 5000 })
  const published: string[] = []
  cp.cp.events.on('publish', (v: string) => published.push(v))
  const sas = ['a', 'b', 'c', 'd', 'e']
  const tokens = await Promise.all(sas.map((sa) => cp.token(sa)))
  fleet.push(...(await Promise.all(sas.map((sa, i) => startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: sa, app: '127.0.0.1:1', token: tokens[i]! })))))
  const clusters = (s: MeshSidecar): number => (s.sidecar.configDump() as { clusters: unknown[] }).clusters.length
  await until(() => fleet.every((s) => clusters(s) === sas.length && s.client.lastGoodVersion === cp.cp.version), 15_000, 'every sidecar has all five clusters')
  expect(published.length).toBeGreaterThanOrEqual(1)
  expect(published.length).toBeLessThanOrEqual(2)
}, 30_000)
