// Another replica's sidecars stay in their clusters while this replica's watch is down or while it
// cannot read the store at all; a replica that really stopped heart-beating still expires.
// (Found by the etcd leader-loss fault: the etcd client re-established a broken watch after a
// growing backoff, the other replica's heartbeats seemed to stop, and callers got 404 NR for a
// service that was there.)
import { expect, test } from 'vitest'
import { EndpointRegistry, type Registration } from '../../../control-plane/discovery/index.js'
import type { Store, StoreEvent } from '../../../control-plane/store/index.js'

const GRACE = 5_000
const HEARTBEAT = 1_000

/** A store whose watches never deliver (a stalled etcd watch) and whose reads can be made to fail. */
class StalledStore implements Store {
  readonly kind = 'etcd' as const
  readonly url = 'etcd://stalled'
  readonly data = new Map<string, string>()
  down = false
  #check(): void {
    if (this.down) throw new Error('etcdserver: request timed out')
  }
  async get(key: string): Promise<string | null> {
    this.#check()
    return this.data.get(key) ?? null
  }
  async list(prefix: string): Promise<Map<string, string>> {
    this.#check()
    return new Map([...this.data].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1)))
  }
  async put(key: string, value: string): Promise<void> {
    this.#check()
    this.data.set(key, value)
  }
  async putAll(entries: readonly (readonly [string, string])[]): Promise<void> {
    this.#check()
    for (const [k, v] of entries) this.data.set(k, v)
  }
  async create(key: string, value: string): Promise<boolean> {
    this.#check()
    if (this.data.has(key)) return false
    this.data.set(key, value)
    return true
  }
  async delete(key: string): Promise<boolean> {
    this.#check()
    return this.data.delete(key)
  }
  async watch(_prefix: string, _fn: (e: StoreEvent) => void): Promise<{ close(): Promise<void> }> {
    return { close: async () => {} }
  }
  async close(): Promise<void> {}
}

const reg: Registration = {
  node: 'orders-1',
  identity: 'spiffe://cluster.local/ns/shop/sa/orders',
  namespace: 'shop',
  serviceAccount: 'orders',
  service: 'orders',
  labels: {},
  address: '10.0.0.1:15006',
  replica: 'replica-a',
  connected: true,
  disconnectedAt: null,
}

async function setup(): Promise<{ clock: { t: number; now(): number }; store: StalledStore; b: EndpointRegistry; beatA(): void }> {
  const clock = { t: Date.parse('2026-12-03T08:00:00Z'), now: () => clock.t }
  const store = new StalledStore()
  const beatA = () => store.data.set('replicas/replica-a', JSON.stringify({ id: 'replica-a', address: '127.0.0.1:1', lastSeen: new Date(clock.t).toISOString() }))
  beatA()
  store.data.set('registrations/orders-1', JSON.stringify(reg))
  const logger = { debug() {}, info() {}, warn() {}, error() {} }
  const b = new EndpointRegistry({ store, replicaId: 'replica-b', graceMs: GRACE, heartbeatMs: HEARTBEAT, write: () => {}, heldAddress: () => undefined, onChange: () => {} }, { clock, logger })
  await b.start()
  return { clock, store, b, beatA }
}

const endpoints = (r: EndpointRegistry) => r.clusters().map((c) => [c.name, c.endpoints])

test('with its watch stalled, a replica still sees the other heart-beat (read on every tick) and keeps its sidecars', async () => {
  const { clock, b, beatA } = await setup()
  for (let i = 0; i < 40; i++) {
    clock.t += HEARTBEAT
    beatA()
    await b.heartbeat('127.0.0.1:2')
  }
  expect(endpoints(b)).toEqual([['orders.shop', ['10.0.0.1:15006']]])
  expect(b.liveReplicas().map((r) => r.id).sort()).toEqual(['replica-a', 'replica-b'])
})

test('a replica that stopped heart-beating expires two grace periods after its last heartbeat, while the store is readable', async () => {
  const { clock, b } = await setup()
  const start = clock.t
  while (clock.t + HEARTBEAT < start + 2 * GRACE) {
    clock.t += HEARTBEAT
    await b.heartbeat('127.0.0.1:2')
  }
  clock.t = start + 2 * GRACE - 1
  await b.heartbeat('127.0.0.1:2')
  expect(endpoints(b)).toHaveLength(1) // 2 grace periods minus 1 ms
  clock.t += 2
  await b.heartbeat('127.0.0.1:2')
  expect(endpoints(b)).toEqual([])
  expect(b.liveReplicas().map((r) => r.id)).toEqual(['replica-b'])
})

test('while this replica cannot read the store, no other replica is declared dead (fail static), however long', async () => {
  const { clock, store, b } = await setup()
  store.down = true
  for (let i = 0; i < 60; i++) {
    clock.t += HEARTBEAT
    await expect(b.heartbeat('127.0.0.1:2')).rejects.toThrow(/timed out/)
  }
  expect(endpoints(b)).toEqual([['orders.shop', ['10.0.0.1:15006']]])
})

test('once the store is readable again, heartbeats written before count as that moment for one grace period', async () => {
  const { clock, store, b, beatA } = await setup()
  store.down = true
  clock.t += 60 * HEARTBEAT // A could not write either
  store.down = false
  await b.heartbeat('127.0.0.1:2')
  expect(endpoints(b)).toHaveLength(1) // A's last heartbeat is a minute old: not held against it yet
  clock.t += HEARTBEAT
  beatA() // A is back
  await b.heartbeat('127.0.0.1:2')
  clock.t += 3 * GRACE
  beatA()
  await b.heartbeat('127.0.0.1:2')
  expect(endpoints(b)).toHaveLength(1)
})

test('once the store is readable again, a replica that does not come back expires', async () => {
  const { clock, store, b } = await setup()
  store.down = true
  clock.t += 60 * HEARTBEAT
  store.down = false
  await b.heartbeat('127.0.0.1:2')
  for (let i = 0; i < 2 * (GRACE / HEARTBEAT) + 1; i++) {
    clock.t += HEARTBEAT
    await b.heartbeat('127.0.0.1:2')
  }
  expect(endpoints(b)).toEqual([])
})
