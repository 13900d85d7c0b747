import { Etcd3, type Watcher } from 'etcd3'
import { StoreError } from './errors.js'
import { checkKey, type Store, type StoreEvent, type StoreWatch } from './types.js'

const ROOT = '/remora/'
/** A broken watch is re-established after 100 ms, doubling to at most 1 s (the client's default grows to 30 s). */
const WATCH_BACKOFF_FIRST_MS = 100
const WATCH_BACKOFF_MAX_MS = 1_000

/**
 * The etcd client's watch backoff (cockatiel's IBackoff shape: a duration and the next one). A
 * watch that stays down while its member is gone delays every change another replica makes
 * (policies, registrations, heartbeats) by that long, so it is kept short; etcd answers a
 * re-established watch from the revision it had reached, so nothing is missed meanwhile.
 */
function watchBackoff(ms: number): { readonly duration: number; next(): ReturnType<typeof watchBackoff> } {
  return { duration: ms, next: () => watchBackoff(Math.min(WATCH_BACKOFF_MAX_MS, ms * 2)) }
}

/**
 * etcd (v3 API): the distributed store. Several control-plane replicas share it; watches deliver
 * every replica's writes to every other. `create` is an etcd transaction (create revision == 0),
 * so two replicas starting together agree on one root CA and one signing key.
 */
export class EtcdStore implements Store {
  readonly kind = 'etcd' as const
  readonly url: string
  readonly #client: Etcd3
  readonly #watchers = new Set<Watcher>()

  private constructor(hosts: string[]) {
    this.url = `etcd://${hosts.join(',')}`
    this.#client = new Etcd3({ hosts: hosts.map((h) => `http://${h}`), dialTimeout: 3000, faultHandling: { watchBackoff: watchBackoff(WATCH_BACKOFF_FIRST_MS) } })
  }

  /** `hosts` as host:port. Resolves once etcd answered one request. */
  static async open(hosts: string[]): Promise<EtcdStore> {
    const s = new EtcdStore(hosts)
    try {
      await s.#client.get(`${ROOT}probe`).string()
    } catch (err) {
      await s.close()
      throw new StoreError('REMORA_ERR_STORE_UNAVAILABLE', `etcd at ${hosts.join(',')} is unreachable: ${(err as Error).message}`, { cause: err })
    }
    return s
  }

  async get(key: string): Promise<string | null> {
    checkKey(key)
    return this.#client.get(ROOT + key).string()
  }

  async list(prefix: string): Promise<Map<string, string>> {
    checkKey(prefix, true)
    const p = ROOT + (prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`)
    const all = await this.#client.getAll().prefix(p).strings()
    const exact = prefix !== '' && !prefix.endsWith('/') ? await this.#client.get(ROOT + prefix).string() : null
    const out = new Map(Object.entries(all).map(([k, v]) => [k.slice(ROOT.length), v]))
    if (exact !== null) out.set(prefix, exact)
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }

  async put(key: string, value: string): Promise<void> {
    checkKey(key)
    await this.#client.put(ROOT + key).value(value)
  }

  async putAll(entries: readonly (readonly [string, string])[]): Promise<void> {
    if (entries.length === 0) return
    for (const [k] of entries) checkKey(k)
    // One transaction: every key at one revision (watchers get them in one response) or none. etcd
    // caps a transaction at --max-txn-ops (128 by default): a larger set fails whole.
    const ops = entries.map(([k, v]) => this.#client.put(ROOT + k).value(v))
    await this.#client.if(ROOT + entries[0]![0], 'Mod', '>', -1).then(...ops).commit()
  }

  async create(key: string, value: string): Promise<boolean> {
    checkKey(key)
    const r = await this.#client.if(ROOT + key, 'Create', '==', 0).then(this.#client.put(ROOT + key).value(value)).commit()
    return r.succeeded
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key)
    const r = await this.#client.delete().key(ROOT + key)
    return Number(r.deleted) > 0
  }

  async watch(prefix: string, fn: (e: StoreEvent) => void): Promise<StoreWatch> {
    checkKey(prefix, true)
    const folder = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`
    const w = await this.#client.watch().prefix(ROOT + (prefix.endsWith('/') || prefix === '' ? folder : prefix)).create()
    this.#watchers.add(w)
    const keyOf = (raw: Buffer): string | null => {
      const k = raw.toString().slice(ROOT.length)
      return k === prefix || k.startsWith(folder) ? k : null
    }
    w.on('put', (kv) => {
      const k = keyOf(kv.key)
      if (k !== null) fn({ type: 'put', key: k, value: kv.value.toString() })
    })
    w.on('delete', (kv) => {
      const k = keyOf(kv.key)
      if (k !== null) fn({ type: 'delete', key: k, value: null })
    })
    w.on('error', () => {}) // the client re-establishes the watch on its own
    return {
      close: async () => {
        this.#watchers.delete(w)
        await w.cancel()
      },
    }
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) await w.cancel().catch(() => {})
    this.#watchers.clear()
    this.#client.close()
  }
}
