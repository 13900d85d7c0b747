// The Store contract every implementation meets (file directory, etcd). Keys are `/`-separated
// segments of [A-Za-z0-9._:-] (no empty, `.` or `..` segment); values are UTF-8 text.
import { StoreError } from './errors.js'

export interface StoreEvent {
  readonly type: 'put' | 'delete'
  readonly key: string
  /** The new value for `put`, null for `delete`. */
  readonly value: string | null
}

export interface StoreWatch {
  close(): Promise<void>
}

export interface Store {
  /** `file` or `etcd`: shown by /healthz and `remora status`. */
  readonly kind: 'file' | 'etcd'
  /** The store URL without credentials, e.g. `file:///var/lib/remora` or `etcd://10.0.0.1:2379`. */
  readonly url: string
  get(key: string): Promise<string | null>
  /** Every key under `prefix` (a key or a folder ending with `/`), sorted by key. */
  list(prefix: string): Promise<Map<string, string>>
  put(key: string, value: string): Promise<void>
  /**
   * Puts every entry as one write: a reader (a list, a watcher, another replica) sees all of them
   * or none, and a crash part-way leaves all or none (an `apply` of several documents is never
   * half-applied). Watchers hear of the keys together.
   */
  putAll(entries: readonly (readonly [key: string, value: string])[]): Promise<void>
  /** Puts only when the key does not exist yet; false when it did (first writer wins across replicas). */
  create(key: string, value: string): Promise<boolean>
  /** False when there was nothing to delete. */
  delete(key: string): Promise<boolean>
  /**
   * Calls `onEvent` for every later change under `prefix`, including changes made by other
   * processes (another replica, a GitOps checkout). Resolves once the watch is established.
   */
  watch(prefix: string, onEvent: (e: StoreEvent) => void): Promise<StoreWatch>
  close(): Promise<void>
}

const SEGMENT = /^[A-Za-z0-9._:-]+$/

export function checkKey(key: string, isPrefix = false): void {
  const k = isPrefix && key.endsWith('/') ? key.slice(0, -1) : key
  if (isPrefix && k === '') return
  const segs = k.split('/')
  if (segs.some((s) => !SEGMENT.test(s) || s === '.' || s === '..' || s.startsWith('.'))) {
    throw new StoreError('REMORA_ERR_STORE_BAD_KEY', `invalid store key ${JSON.stringify(key.slice(0, 200))}`)
  }
}

export function underPrefix(key: string, prefix: string): boolean {
  return prefix === '' || key === prefix || key.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)
}
