// The control plane's traffic record on a real file store: reports merged per workload and hour,
// writes coalesced, every replica's buckets merged by the query, the window, the retention sweep,
// the bucket bounds, and a replica restarted with the same id continuing its bucket.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { createCoalescedWriter } from '../../../control-plane/status/index.js'
import { FileStore, type Store } from '../../../control-plane/store/index.js'
import { HOUR_MS, TrafficRecord, bucketHour } from '../../../control-plane/traffic/index.js'
import { TRAFFIC_LATENCY_BOUNDS_MS, type TrafficEdge, type TrafficReport } from '../../../proxy/snapshot/index.js'
import { captureLogger } from '../../helpers/mesh.js'

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders'
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend'
const T0 = Date.UTC(2026, 0, 1, 10, 0, 0)

function edge(o: Partial<TrafficEdge> = {}): TrafficEdge {
  const latency = new Array<number>(TRAFFIC_LATENCY_BOUNDS_MS.length + 1).fill(0)
  latency[1] = o.count ?? 1
  return { source: FRONTEND, method: 'GET', path: '/orders/{id}', port: 8080, protocol: 'http', decision: 'ALLOW', policy: 'shop/allow', rule: 0, mtls: true, count: 1, errors: 0, firstSeen: T0, lastSeen: T0, latency, denials: [], traceId: null, ...o }
}

const report = (edges: TrafficEdge[], o: Partial<TrafficReport['destination']> & { dropped?: number } = {}): TrafficReport => ({
  destination: { principal: o.principal ?? ORDERS, namespace: o.namespace ?? 'shop', workload: o.workload ?? 'orders' },
  windowStart: T0,
  windowEnd: T0 + 10_000,
  edges,
  dropped: o.dropped ?? 0,
})

const dirs: string[] = []
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

/** A store that counts puts, over a real file store. */
async function openStore(dir?: string): Promise<{ store: Store; dir: string; puts: string[] }> {
  const d = dir ?? (await mkdtemp(join(tmpdir(), 'remora-traffic-')))
  if (!dir) dirs.push(d)
  const fs = await FileStore.open(d, { pollMs: 60_000 })
  const puts: string[] = []
  const store: Store = {
    kind: fs.kind,
    url: fs.url,
    get: (k) => fs.get(k),
    list: (p) => fs.list(p),
    put: (k, v) => (puts.push(k), fs.put(k, v)),
    putAll: (e) => fs.putAll(e),
    create: (k, v) => fs.create(k, v),
    delete: (k) => fs.delete(k),
    watch: (p, f) => fs.watch(p, f),
    close: () => fs.close(),
  }
  closers.push(() => fs.close())
  return { store, dir: d, puts }
}

function record(store: Store, o: { replicaId?: string; now?: () => number; retentionMs?: number; limits?: { maxEdges: number; maxBytes: number } } = {}) {
  let t = T0 + 5 * 60_000
  const logger = captureLogger()
  const deps = { clock: { now: o.now ?? (() => t) }, logger }
  const dropped: number[] = []
  const r = new TrafficRecord({ store, writer: createCoalescedWriter(store, logger), replicaId: o.replicaId ?? 'r1', retentionMs: o.retentionMs, flushMs: 60_000, limits: o.limits, onDropped: (n) => dropped.push(n) }, deps)
  closers.push(() => r.close())
  return { r, advance: (ms: number) => void (t += ms), dropped, logger }
}

describe('control-plane traffic record', () => {
  test('reports for one workload merge into one bucket per hour: counts, histograms, first/last seen', async () => {
    const { store } = await openStore()
    const { r } = record(store)
    r.accept(report([edge({ count: 2, lastSeen: T0 + 1000 })]))
    r.accept(report([edge({ count: 3, firstSeen: T0 - 5000, lastSeen: T0 + 2000 })]))
    const q = await r.query({ sinceMs: HOUR_MS })
    expect(q.edges).toHaveLength(1)
    expect(q.edges[0]).toMatchObject({ destination: { principal: ORDERS, namespace: 'shop', workload: 'orders' }, source: FRONTEND, path: '/orders/{id}', count: 5, firstSeen: T0 - 5000, lastSeen: T0 + 2000 })
    expect(q.edges[0]!.latency[1]).toBe(5)
    const keys = [...(await store.list('traffic/')).keys()]
    expect(keys).toEqual([`traffic/shop/orders/${T0 / 1000}/r1`])
    expect(bucketHour(keys[0]!)).toBe(T0)
  })

  test('writes are coalesced: many reports within the flush period are one write per bucket', async () => {
    const { store, puts } = await openStore()
    const { r } = record(store)
    for (let i = 0; i < 50; i++) r.accept(report([edge({ path: `/p${i % 5}` })]))
    r.accept(report([edge()], { workload: 'payments', principal: 'spiffe://cluster.local/ns/shop/sa/payments' }))
    expect(puts).toEqual([])
    await r.flush()
    expect(puts.sort()).toEqual([`traffic/shop/orders/${T0 / 1000}/r1`, `traffic/shop/payments/${T0 / 1000}/r1`])
  })

  test('the query filters by namespace and workload', async () => {
    const { store } = await openStore()
    const { r } = record(store)
    r.accept(report([edge()]))
    r.accept(report([edge()], { workload: 'payments', principal: 'spiffe://cluster.local/ns/shop/sa/payments' }))
    r.accept(report([edge()], { namespace: 'web', workload: 'orders', principal: 'spiffe://cluster.local/ns/web/sa/orders' }))
    expect((await r.query({ sinceMs: HOUR_MS })).edges).toHaveLength(3)
    expect((await r.query({ namespace: 'shop', sinceMs: HOUR_MS })).edges.map((e) => e.destination.workload)).toEqual(['orders', 'payments'])
    expect((await r.query({ namespace: 'shop', workload: 'orders', sinceMs: HOUR_MS })).edges.map((e) => e.destination.namespace)).toEqual(['shop'])
    expect((await r.query({ workload: 'orders', sinceMs: HOUR_MS })).edges.map((e) => e.destination.namespace)).toEqual(['shop', 'web'])
  })

  test('several replicas write their own keys; the query merges them', async () => {
    const { store } = await openStore()
    const a = record(store, { replicaId: 'a' })
    const b = record(store, { replicaId: 'b' })
    a.r.accept(report([edge({ count: 2 })]))
    b.r.accept(report([edge({ count: 3 })]))
    await b.r.flush()
    const q = await a.r.query({ sinceMs: HOUR_MS })
    expect(q.edges.map((e) => e.count)).toEqual([5])
    expect((await store.list('traffic/')).size).toBe(2)
  })

  test('the window: since is capped at the retention; edges last seen before it are left out', async () => {
    const { store } = await openStore()
    const { r, advance } = record(store, { retentionMs: 6 * HOUR_MS })
    r.accept(report([edge({ path: '/old', lastSeen: T0 + 60_000 })]))
    await r.flush()
    advance(2 * HOUR_MS)
    r.accept(report([edge({ path: '/new', firstSeen: T0 + 2 * HOUR_MS, lastSeen: T0 + 2 * HOUR_MS + 5 * 60_000 })]))
    const recent = await r.query({ sinceMs: 30 * 60_000 })
    expect(recent.edges.map((e) => e.path)).toEqual(['/new'])
    expect(recent.window.to - recent.window.from).toBe(30 * 60_000)
    expect((await r.query({ sinceMs: 24 * HOUR_MS })).window.to - (await r.query({ sinceMs: 24 * HOUR_MS })).window.from).toBe(6 * HOUR_MS)
    expect((await r.query({ sinceMs: 6 * HOUR_MS })).edges.map((e) => e.path)).toEqual(['/new', '/old'])
  })

  test('retention: buckets entirely outside the window are deleted, newer ones stay', async () => {
    const { store } = await openStore()
    const { r, advance } = record(store, { retentionMs: 2 * HOUR_MS })
    r.accept(report([edge({ path: '/first' })]))
    await r.flush()
    advance(HOUR_MS)
    r.accept(report([edge({ path: '/second' })]))
    await r.flush()
    expect(await r.sweep()).toBe(0)
    advance(2 * HOUR_MS)
    expect(await r.sweep()).toBe(1)
    expect([...(await store.list('traffic/')).keys()]).toEqual([`traffic/shop/orders/${(T0 + HOUR_MS) / 1000}/r1`])
  })

  test('bounded: past maxEdges per bucket new edges are dropped (counted); known ones still merge', async () => {
    const { store } = await openStore()
    const { r, dropped } = record(store, { limits: { maxEdges: 2, maxBytes: 1_000_000 } })
    r.accept(report([edge({ path: '/a' }), edge({ path: '/b' }), edge({ path: '/c', count: 4 })], { dropped: 1 }))
    r.accept(report([edge({ path: '/a' })]))
    const q = await r.query({ sinceMs: HOUR_MS })
    expect(q.edges.map((e) => [e.path, e.count])).toEqual([['/a', 2], ['/b', 1]])
    expect(q.dropped).toBe(5)
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(1)
  })

  test('bounded in bytes: the least-counted edges go first', async () => {
    const { store } = await openStore()
    const { r } = record(store, { limits: { maxEdges: 1000, maxBytes: 2500 } })
    r.accept(report(Array.from({ length: 20 }, (_, i) => edge({ path: `/p${String(i).padStart(2, '0')}`, count: i + 1 }))))
    await r.flush()
    const text = [...(await store.list('traffic/')).values()][0]!
    expect(text.length).toBeLessThanOrEqual(2500)
    const q = await r.query({ sinceMs: HOUR_MS })
    const kept = q.edges.map((e) => e.count).sort((a, b) => b - a)
    expect(kept[0]).toBe(20)
    expect(kept.length).toBeLessThan(20)
    expect(q.dropped).toBe(210 - kept.reduce((a, b) => a + b, 0))
  })

  test('a replica restarted with the same id continues its bucket instead of overwriting it', async () => {
    const { store, dir } = await openStore()
    const first = record(store, { replicaId: 'stable' })
    first.r.accept(report([edge({ count: 2 })]))
    await first.r.close()
    const again = await openStore(dir)
    const second = record(again.store, { replicaId: 'stable' })
    second.r.accept(report([edge({ count: 3 })]))
    expect((await second.r.query({ sinceMs: HOUR_MS })).edges.map((e) => e.count)).toEqual([5])
  })

  test('an unreadable bucket is skipped (logged once), the others are served', async () => {
    const { store } = await openStore()
    const { r, logger } = record(store)
    r.accept(report([edge()]))
    await r.flush()
    await store.put(`traffic/shop/payments/${T0 / 1000}/r9`, '{"v":1,"edges":"no"}')
    await store.put(`traffic/shop/cart/${T0 / 1000}/r9`, 'not json')
    expect((await r.query({ sinceMs: HOUR_MS })).edges).toHaveLength(1)
    expect(logger.lines.filter((l) => (l.obj as { event?: string }).event === 'traffic_bucket_unreadable')).toHaveLength(1)
  })

  test('denials merge newest first, bounded; the newest trace id is kept', async () => {
    const { store } = await openStore()
    const { r } = record(store)
    const deny = (at: number, traceId: string) => edge({ decision: 'DENY', policy: null, rule: null, firstSeen: at, lastSeen: at, denials: [{ at, reason: `deny at ${at}` }], traceId })
    for (let i = 0; i < 7; i++) r.accept(report([deny(T0 + i, `${String(i).repeat(32)}`)]))
    const e = (await r.query({ sinceMs: HOUR_MS })).edges[0]!
    expect(e.denials.map((d) => d.at)).toEqual([T0 + 6, T0 + 5, T0 + 4, T0 + 3, T0 + 2])
    expect(e.traceId).toBe('6'.repeat(32))
  })
})
