import { KubeApiError, type KubeClient, type WatchStream } from './client.js'
import { hasCode } from '../../proxy/errors/index.js'

// list+watch of one resource, as client-go's reflector does: list (resourceVersion R), then watch
// from R; every event moves R forward (bookmarks too); a watch that ends is resumed from R; a 410
// Gone (R compacted away, as an HTTP status or an ERROR event) re-lists, and the difference
// between the cache and the new list is delivered as events, so no change is ever lost.

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; [k: string]: unknown }
  [k: string]: unknown
}

export type ReflectorEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KubeObject }

export interface ReflectorOptions {
  /** e.g. /apis/security.remora.dev/v1/authorizationpolicies (all namespaces). */
  readonly path: string
  readonly onEvent: (e: ReflectorEvent) => void
  /** After each (re-)list has been applied. */
  readonly onSynced?: () => void
  readonly onError?: (err: Error) => void
  /** Delay before retrying after an error (default 1 s). */
  readonly retryMs?: number
}

export const keyOf = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`

export class Reflector {
  readonly #client: KubeClient
  readonly #o: ReflectorOptions
  readonly #cache = new Map<string, KubeObject>()
  #rv = ''
  #stream: WatchStream | null = null
  #closed = false
  readonly #abort = new AbortController()
  #loop: Promise<void>
  /** How many times the reflector listed (the first list included): tests read it. */
  lists = 0

  constructor(client: KubeClient, o: ReflectorOptions) {
    this.#client = client
    this.#o = o
    this.#loop = this.#run()
  }

  get resourceVersion(): string {
    return this.#rv
  }

  items(): KubeObject[] {
    return [...this.#cache.values()]
  }

  async #list(): Promise<void> {
    const r = await this.#client.request('GET', this.#o.path)
    if (r.status !== 200) throw new KubeApiError(r.status, `list ${this.#o.path}: ${r.body?.message ?? `HTTP ${r.status}`}`)
    this.lists++
    const items = (r.body.items ?? []) as KubeObject[]
    const seen = new Set<string>()
    for (const it of items) {
      // List items carry no kind/apiVersion: the list's own kind tells them.
      const obj: KubeObject = { apiVersion: r.body.apiVersion, kind: String(r.body.kind ?? '').replace(/List$/, ''), ...it }
      const k = keyOf(obj)
      seen.add(k)
      const old = this.#cache.get(k)
      this.#cache.set(k, obj)
      if (!old) this.#o.onEvent({ type: 'ADDED', object: obj })
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.#o.onEvent({ type: 'MODIFIED', object: obj })
    }
    for (const [k, old] of this.#cache) {
      if (!seen.has(k)) {
        this.#cache.delete(k)
        this.#o.onEvent({ type: 'DELETED', object: old })
      }
    }
    this.#rv = String(r.body.metadata?.resourceVersion ?? '')
    this.#o.onSynced?.()
  }

  async #watchOnce(): Promise<'gone' | 'ended'> {
    let gone = false
    const sep = this.#o.path.includes('?') ? '&' : '?'
    const path = `${this.#o.path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(this.#rv)}`
    try {
      this.#stream = await this.#client.watch(path, (e) => {
        if (e.type === 'ERROR') {
          if (e.object?.code === 410) gone = true
          else this.#o.onError?.(new KubeApiError(e.object?.code ?? 0, e.object?.message ?? 'watch error'))
          this.#stream?.close()
          return
        }
        const obj = e.object as KubeObject
        if (obj?.metadata?.resourceVersion) this.#rv = obj.metadata.resourceVersion
        if (e.type === 'BOOKMARK') return
        if (e.type !== 'ADDED' && e.type !== 'MODIFIED' && e.type !== 'DELETED') return
        const k = keyOf(obj)
        if (e.type === 'DELETED') this.#cache.delete(k)
        else this.#cache.set(k, obj)
        this.#o.onEvent({ type: e.type, object: obj })
      }, this.#abort.signal)
    } catch (err) {
      if (hasCode(err, 'REMORA_ERR_KUBE_API') && (err as KubeApiError).status === 410) return 'gone'
      throw err
    }
    await this.#stream.done.catch(() => {})
    this.#stream = null
    return gone ? 'gone' : 'ended'
  }

  async #run(): Promise<void> {
    let needList = true
    while (!this.#closed) {
      try {
        if (needList) await this.#list()
        needList = false
        if (this.#closed) return
        if ((await this.#watchOnce()) === 'gone') needList = true
      } catch (err) {
        if (this.#closed) return
        this.#o.onError?.(err as Error)
        needList = true
        await new Promise<void>((r) => {
          const t = setTimeout(r, this.#o.retryMs ?? 1000)
          this.#abort.signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true })
        })
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#abort.abort()
    this.#stream?.close()
    await this.#loop
  }
}
