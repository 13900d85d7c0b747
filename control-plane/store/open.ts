import { resolve } from 'node:path'
import { FileStore, type FileStoreOptions } from './file.js'
import { StoreError } from './errors.js'
import type { Store } from './types.js'

/**
 * `file://<dir>` (or a bare path) → FileStore; `etcd://h:p[,h:p]` → EtcdStore. etcd is loaded
 * lazily so a file-store control plane never pays for the gRPC client.
 */
export async function openStore(url: string, o: FileStoreOptions = {}): Promise<Store> {
  if (url.startsWith('etcd://')) {
    const hosts = url.slice('etcd://'.length).split(',').map((h) => h.trim()).filter(Boolean)
    if (hosts.length === 0 || hosts.some((h) => !/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/.test(h))) {
      throw new StoreError('REMORA_ERR_STORE_URL', `expected etcd://host:port[,host:port], got ${url}`)
    }
    const { EtcdStore } = await import('./etcd.js')
    return EtcdStore.open(hosts)
  }
  if (url.startsWith('file://')) return FileStore.open(resolve(url.slice('file://'.length)), o)
  if (/^[a-z0-9+.-]+:\/\//i.test(url)) throw new StoreError('REMORA_ERR_STORE_URL', `unsupported store ${url} (file://<dir> or etcd://host:port)`)
  return FileStore.open(resolve(url), o)
}
