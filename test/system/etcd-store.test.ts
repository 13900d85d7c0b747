import { afterAll, beforeAll } from 'vitest'
import { openStore, type Store } from '../../control-plane/store/index.js'
import { startEtcd, type TestEtcd } from '../helpers/etcd.js'
import { storeConformance } from '../unit/control-plane/store-conformance.js'

let etcd: TestEtcd
beforeAll(async () => {
  etcd = await startEtcd()
})
afterAll(async () => {
  await etcd?.stop()
})

storeConformance('etcd store', async () => {
  // A fresh key space per test: wipe what the previous test left.
  const opened: Store[] = []
  const open = async (): Promise<Store> => {
    const s = await openStore(etcd.url)
    opened.push(s)
    return s
  }
  const store = await open()
  for (const k of (await store.list('')).keys()) await store.delete(k)
  return {
    store,
    other: open,
    cleanup: async () => {
      for (const s of opened) await s.close()
    },
  }
})
