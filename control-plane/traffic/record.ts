import { z } from 'zod'
import { TrafficEdgeSchema, edgeKey, mergeEdge, type TrafficEdge, type TrafficReport } from '../../proxy/snapshot/index.js'
import type { ControlPlaneDeps } from '../deps.js'
import type { CoalescedWriter } from '../status/index.js'
import type { Store } from '../store/index.js'

export const TRAFFIC_PREFIX = 'traffic/'
export const HOUR_MS = 3_600_000
export const DEFAULT_TRAFFIC_RETENTION_MS = 24 * HOUR_MS

/**
 * One bucket is one workload's edges for one hour as one replica merged them. Bounded in edges and
 * in bytes (etcd's default request limit is 1.5 MiB): past either, the least-used edges go and their
 * counts are added to `dropped`.
 */
export const TRAFFIC_BUCKET_LIMITS = { maxEdges: 5000, maxBytes: 1_000_000 } as const

/** One edge of the record as the query serves it: the destination workload and the edge. */
export interface ObservedEdge extends TrafficEdge {
  readonly destination: { readonly principal: string; readonly namespace: string; readonly workload: string }
}

export interface TrafficQuery {
  readonly namespace?: string
  readonly workload?: string
  /** How far back (ms); at most the retention window. */
  readonly sinceMs: number
}

export interface TrafficQueryResult {
  readonly edges: ObservedEdge[]
  /** ms since the epoch. Buckets are hours: an edge seen in the window may count requests from up to an hour before `from`. */
  readonly window: { readonly from: number; readonly to: number }
  /** Requests and connections not recorded (a sidecar's table or a bucket was full). */
  readonly dropped: number
}

export interface TrafficRecordOptions {
  readonly store: Store
  /** The control plane's coalesced store writer (one write in flight per key, the latest wins). */
  readonly writer: CoalescedWriter
  readonly replicaId: string
  /** Buckets entirely older than this are deleted (default 24 h). */
  readonly retentionMs?: number
  /** Reports are merged in memory and written at most this often (default 1 s). */
  readonly flushMs?: number
  /** How often expired buckets are looked for (default: hourly, or the retention if shorter). */
  readonly sweepMs?: number
  readonly limits?: { readonly maxEdges: number; readonly maxBytes: number }
  /** Edges dropped because a bucket was full (a metric). */
  readonly onDropped?: (n: number) => void
}

const StoredEdgeSchema = z.strictObject({ ...TrafficEdgeSchema.shape, destination: z.string().max(512) })
const StoredBucketSchema = z.strictObject({
  v: z.literal(1),
  namespace: z.string(),
  workload: z.string(),
  /** Start of the hour, ms since the epoch. */
  hour: z.number().int(),
  dropped: z.number().int().min(0),
  edges: z.array(StoredEdgeSchema),
})
type StoredEdge = z.output<typeof StoredEdgeSchema>

interface Bucket {
  readonly namespace: string
  readonly workload: string
  readonly hour: number
  /** edgeKey(destination principal, edge) → edge. */
  readonly edges: Map<string, StoredEdge>
  dropped: number
}

const KEY = /^traffic\/([^/]+)\/([^/]+)\/(\d+)\/[^/]+$/

/** The hour (ms) a bucket key is for, or null when the key is not a bucket's. */
export function bucketHour(key: string): number | null {
  const m = KEY.exec(key)
  return m ? Number(m[3]) * 1000 : null
}

/** A store-key segment for a replica id given on the command line. */
const segment = (s: string): string => s.replace(/[^A-Za-z0-9._:-]/g, '_').replace(/^\.+/, '_') || '_'

/**
 * The control plane's traffic record: sidecars' reports merged per destination workload and hour
 * into `traffic/<namespace>/<workload>/<hour-epoch-s>/<replica>`. Each replica writes only its own
 * keys and holds the current hour's buckets in memory, so replicas sharing etcd never race on a
 * read-modify-write; a query merges every replica's buckets. Reports are merged in memory and
 * written once per flushMs (a thousand sidecars reporting in the same second are one write per
 * bucket); buckets older than the retention window are deleted.
 */
export class TrafficRecord {
  readonly retentionMs: number
  readonly #o: TrafficRecordOptions
  readonly #deps: ControlPlaneDeps
  readonly #replica: string
  readonly #limits: { readonly maxEdges: number; readonly maxBytes: number }
  /** Merged since the last flush, by bucket key. */
  #pending = new Map<string, Bucket>()
  /** This replica's buckets of the current hour, as last written. */
  readonly #cache = new Map<string, Bucket>()
  #flushTimer: NodeJS.Timeout | null = null
  #sweepTimer: NodeJS.Timeout | null = null
  #flushing: Promise<void> = Promise.resolve()
  #warnedBad = false
  #closed = false

  constructor(o: TrafficRecordOptions, deps: ControlPlaneDeps) {
    this.#o = o
    this.#deps = deps
    this.retentionMs = o.retentionMs ?? DEFAULT_TRAFFIC_RETENTION_MS
    this.#replica = segment(o.replicaId)
    this.#limits = o.limits ?? TRAFFIC_BUCKET_LIMITS
  }

  /** Starts the retention sweep (a first one now, in the background). */
  start(): void {
    if (this.#closed || this.#sweepTimer) return
    const run = (): void => void this.sweep().catch((err: unknown) => this.#deps.logger.warn({ event: 'traffic_sweep_failed', error: (err as Error).message }, 'traffic record retention sweep failed'))
    run()
    this.#sweepTimer = setInterval(run, this.#o.sweepMs ?? Math.min(HOUR_MS, this.retentionMs))
    this.#sweepTimer.unref()
  }

  /** Merges a checked report (its destination already matched the caller) into this hour's bucket. */
  accept(report: TrafficReport): void {
    const now = this.#deps.clock.now()
    const hour = Math.floor(now / HOUR_MS) * HOUR_MS
    const { principal, namespace, workload } = report.destination
    const key = `${TRAFFIC_PREFIX}${namespace}/${workload}/${hour / 1000}/${this.#replica}`
    let b = this.#pending.get(key)
    if (!b) this.#pending.set(key, (b = { namespace, workload, hour, edges: new Map(), dropped: 0 }))
    b.dropped += report.dropped
    for (const e of report.edges) this.#mergeInto(b, { ...e, destination: principal })
    if (this.#flushTimer === null) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = null
        void this.flush()
      }, this.#o.flushMs ?? 1000)
      this.#flushTimer.unref() // close() writes what is pending
    }
  }

  #mergeInto(b: Bucket, e: StoredEdge): void {
    const k = edgeKey(e.destination, e)
    const prev = b.edges.get(k)
    if (prev) b.edges.set(k, { ...mergeEdge(prev, e), destination: e.destination })
    else if (b.edges.size < this.#limits.maxEdges) b.edges.set(k, e)
    else {
      b.dropped += e.count
      this.#o.onDropped?.(1)
    }
  }

  /** Writes what was merged since the last flush (one write per bucket, through the coalesced writer). */
  flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer)
    this.#flushTimer = null
    const next = this.#flushing.then(() => this.#flushOnce())
    this.#flushing = next.catch((err: unknown) => this.#deps.logger.warn({ event: 'traffic_flush_failed', error: (err as Error).message }, 'traffic record not written'))
    return this.#flushing
  }

  async #flushOnce(): Promise<void> {
    const batch = this.#pending
    this.#pending = new Map()
    const hour = Math.floor(this.#deps.clock.now() / HOUR_MS) * HOUR_MS
    for (const [key, p] of batch) {
      // A replica restarted with the same id within the hour continues its bucket, it does not overwrite it.
      let b = this.#cache.get(key)
      if (!b) b = (await this.#read(key)) ?? { namespace: p.namespace, workload: p.workload, hour: p.hour, edges: new Map(), dropped: 0 }
      b.dropped += p.dropped
      for (const e of p.edges.values()) this.#mergeInto(b, e)
      const text = this.#serialize(b)
      if (b.hour >= hour) this.#cache.set(key, b)
      this.#o.writer.write(key, text)
    }
    for (const [key, b] of this.#cache) if (b.hour < hour) this.#cache.delete(key)
    await this.#o.writer.flush()
  }

  /** The bucket as stored, dropping the least-counted edges while it is over the byte bound. */
  #serialize(b: Bucket): string {
    const doc = (edges: StoredEdge[]): string => JSON.stringify({ v: 1, namespace: b.namespace, workload: b.workload, hour: b.hour, dropped: b.dropped, edges })
    let edges = [...b.edges.values()]
    let text = doc(edges)
    if (text.length <= this.#limits.maxBytes) return text
    const sized = [...b.edges].map(([k, e]) => ({ k, e, n: JSON.stringify(e).length + 1 })).sort((x, y) => y.e.count - x.e.count)
    let bytes = text.length
    let removed = 0
    while (sized.length > 0 && bytes > this.#limits.maxBytes) {
      const last = sized.pop()!
      bytes -= last.n
      b.edges.delete(last.k)
      b.dropped += last.e.count
      removed++
    }
    this.#o.onDropped?.(removed)
    edges = [...b.edges.values()]
    text = doc(edges)
    return text
  }

  async #read(key: string): Promise<Bucket | null> {
    const text = await this.#o.store.get(key)
    return text === null ? null : this.#parse(key, text)
  }

  #parse(key: string, text: string): Bucket | null {
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch {
      raw = null
    }
    const r = StoredBucketSchema.safeParse(raw)
    if (!r.success) {
      // Logged once: a hand-edited or truncated bucket is skipped, never half-read.
      if (!this.#warnedBad) this.#deps.logger.warn({ event: 'traffic_bucket_unreadable', key }, 'a traffic record bucket is not readable; skipped')
      this.#warnedBad = true
      return null
    }
    const d = r.data
    return { namespace: d.namespace, workload: d.workload, hour: d.hour, dropped: d.dropped, edges: new Map(d.edges.map((e) => [edgeKey(e.destination, e), e])) }
  }

  /**
   * Every replica's buckets that overlap the window, merged: one edge per destination workload and
   * edge key. This replica's reports of the last second are written first, so they are in it.
   */
  async query(q: TrafficQuery): Promise<TrafficQueryResult> {
    await this.flush()
    const to = this.#deps.clock.now()
    const from = to - Math.min(q.sinceMs, this.retentionMs)
    const prefix = q.namespace ? `${TRAFFIC_PREFIX}${q.namespace}/${q.workload ? `${q.workload}/` : ''}` : TRAFFIC_PREFIX
    const merged = new Map<string, ObservedEdge>()
    let dropped = 0
    for (const [key, text] of await this.#o.store.list(prefix)) {
      const hour = bucketHour(key)
      if (hour === null || hour + HOUR_MS <= from) continue
      const b = this.#parse(key, text)
      if (!b || (q.workload && b.workload !== q.workload)) continue
      dropped += b.dropped
      for (const e of b.edges.values()) {
        if (e.lastSeen < from) continue
        const { destination: principal, ...edge } = e
        const k = `${b.namespace}\u0000${b.workload}\u0000${edgeKey(principal, edge)}`
        const prev = merged.get(k)
        const destination = { principal, namespace: b.namespace, workload: b.workload }
        merged.set(k, prev ? { ...mergeEdge(prev, edge), destination } : { ...edge, destination })
      }
    }
    const edges = [...merged.values()].sort(
      (a, b) =>
        cmp(a.destination.namespace, b.destination.namespace) || cmp(a.destination.workload, b.destination.workload) || cmp(a.source, b.source) || cmp(a.path, b.path) || cmp(a.method, b.method) || a.port - b.port || cmp(a.decision, b.decision),
    )
    return { edges, window: { from, to }, dropped }
  }

  /** Deletes every bucket entirely outside the retention window (any replica's). */
  async sweep(): Promise<number> {
    const cutoff = this.#deps.clock.now() - this.retentionMs
    let n = 0
    for (const key of (await this.#o.store.list(TRAFFIC_PREFIX)).keys()) {
      const hour = bucketHour(key)
      if (hour !== null && hour + HOUR_MS <= cutoff) {
        this.#o.writer.write(key, null)
        n++
      }
    }
    await this.#o.writer.flush()
    if (n > 0) this.#deps.logger.info({ event: 'traffic_buckets_expired', buckets: n }, 'traffic record buckets past the retention window deleted')
    return n
  }

  /** Stops the timers and writes what is pending. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#sweepTimer) clearInterval(this.#sweepTimer)
    this.#sweepTimer = null
    await this.flush()
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
