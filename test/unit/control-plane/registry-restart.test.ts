// A control plane that restarts after a long outage keeps the endpoints it finds in the store for
// one grace period, while their sidecars reconnect; an endpoint that does not come back leaves then.
// (Found by the certificate-expiry fault: callers got 404 NR for a service that was there.)
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, test } from 'vitest'
import { EndpointRegistry, type Registration } from '../../../control-plane/discovery/index.js'
import { FileStore, type Store } from '../../../control-plane/store/index.js'

const GRACE = 30_000
const dirs: string[] = []
const stores: Store[] = []
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

const reg = (node: string, address: string): Registration => ({
  node,
  identity: 'spiffe://cluster.local/ns/shop/sa/orders',
  namespace: 'shop',
  serviceAccount: 'orders',
  service: 'orders',
  labels: {},
  address,
  replica: 'before-restart',
  connected: true,
  disconnectedAt: null,
})

async function restartedRegistry(clock: { t: number; now(): number }): Promise<EndpointRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'remora-registry-'))
  dirs.push(dir)
  const store = await FileStore.open(dir, { pollMs: 1000 })
  stores.push(store)
  // What the store holds after an outage of ten grace periods: the old replica's last heartbeat and its sidecars.
  await store.put('replicas/before-restart', JSON.stringify({ id: 'before-restart', address: '127.0.0.1:1', lastSeen: new Date(clock.t - 10 * GRACE).toISOString() }))
  await store.put('registrations/a', JSON.stringify(reg('a', '10.0.0.1:15006')))
  const logger = { debug() {}, info() {}, warn() {}, error() {} }
  const r = new EndpointRegistry({ store, replicaId: 'after-restart', graceMs: GRACE, heartbeatMs: GRACE / 3, write: () => {}, heldAddress: () => undefined, onChange: () => {} }, { clock, logger })
  await r.start()
  return r
}

test('right after a restart, endpoints held by a replica silent for long stay in their cluster (no 404 NR while sidecars reconnect)', async () => {
  const clock = { t: Date.parse('2026-12-03T08:00:00Z'), now: () => clock.t }
  const r = await restartedRegistry(clock)
  expect(r.clusters().map((c) => [c.name, c.endpoints])).toEqual([['orders.shop', ['10.0.0.1:15006']]])
  clock.t += GRACE - 1
  expect(r.clusters()).toHaveLength(1)
})

test('an endpoint that has not come back within one grace period after the restart leaves its cluster', async () => {
  const clock = { t: Date.parse('2026-12-03T08:00:00Z'), now: () => clock.t }
  const r = await restartedRegistry(clock)
  clock.t += GRACE + 1
  expect(r.clusters()).toEqual([])
})
