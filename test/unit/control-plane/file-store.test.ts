import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, test } from 'vitest'
import { FileStore, openStore, type Store, type StoreEvent } from '../../../control-plane/store/index.js'
import { until } from '../../helpers/mesh.js'
import { storeConformance } from './store-conformance.js'

storeConformance('file store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'remora-store-'))
  const opened: Store[] = []
  const store = await FileStore.open(dir, { pollMs: 25 })
  opened.push(store)
  return {
    store,
    other: async () => {
      const o = await FileStore.open(dir, { pollMs: 25 })
      opened.push(o)
      return o
    },
    cleanup: async () => {
      for (const s of opened) await s.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'remora-store-'))
  dirs.push(d)
  return d
}

test('file store: every file is 0600 and every folder 0700 (the CA key lives here)', async () => {
  const dir = await tmp()
  const s = await FileStore.open(join(dir, 'data'))
  await s.put('ca/root-key.pem', 'secret')
  await s.create('admin/token-hash', 'h')
  expect((await stat(join(dir, 'data', 'ca', 'root-key.pem'))).mode & 0o777).toBe(0o600)
  expect((await stat(join(dir, 'data', 'admin', 'token-hash'))).mode & 0o777).toBe(0o600)
  expect((await stat(join(dir, 'data', 'ca'))).mode & 0o777).toBe(0o700)
  expect((await stat(join(dir, 'data'))).mode & 0o777).toBe(0o700)
  await s.close()
})

test('file store: an edit made with an editor (GitOps) reaches watchers, keys map to paths', async () => {
  const dir = await tmp()
  const s = await FileStore.open(dir, { pollMs: 20 })
  const events: StoreEvent[] = []
  await s.watch('policies/', (e) => events.push(e))
  await mkdir(join(dir, 'policies', 'shop'), { recursive: true })
  await writeFile(join(dir, 'policies', 'shop', 'p.yaml'), 'x: 1\n')
  const end = Date.now() + 3000
  while (events.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  expect(events).toEqual([{ type: 'put', key: 'policies/shop/p.yaml', value: 'x: 1\n' }])
  await s.put('policies/shop/q.yaml', 'y: 2\n')
  expect(await readFile(join(dir, 'policies', 'shop', 'q.yaml'), 'utf8')).toBe('y: 2\n')
  await s.close()
})

test('openStore: file:// and bare paths open a file store; an unknown scheme is refused by code', async () => {
  const dir = await tmp()
  const a = await openStore(`file://${dir}`)
  expect(a.kind).toBe('file')
  await a.close()
  await expect(openStore('redis://x:1')).rejects.toMatchObject({ code: 'REMORA_ERR_STORE_URL' })
  await expect(openStore('etcd://')).rejects.toMatchObject({ code: 'REMORA_ERR_STORE_URL' })
})

test('file store: a scan racing our own writes never reports a stale value (watchers see values in write order)', async () => {
  const dir = await tmp()
  const s = await FileStore.open(dir, { pollMs: 1 })
  const seen: number[] = []
  await s.watch('status/', (e) => seen.push(Number(e.value)))
  // Other files make each scan slower, so writes land while a scan is reading.
  for (let i = 0; i < 200; i++) await s.put(`registrations/n${i}`, 'x'.repeat(2000))
  for (let i = 1; i <= 300; i++) await s.put('status/node', String(i))
  // Scans that started during the writes must have finished (and reported whatever they would) before the check.
  const target = s.scans + 3
  await until(() => s.scans >= target, 5000, 'three more completed scans')
  await s.close()
  const backwards = seen.filter((v, i) => i > 0 && v < seen[i - 1]!)
  expect(backwards).toEqual([])
  expect(seen.at(-1)).toBe(300)
})

test('file store: a folder removed behind its back is made again on the next put', async () => {
  const dir = await tmp()
  const s = await FileStore.open(dir)
  await s.put('status/a', '1')
  await rm(join(dir, 'status'), { recursive: true })
  await s.put('status/b', '2')
  expect(await s.get('status/b')).toBe('2')
  expect((await stat(join(dir, 'status'))).mode & 0o777).toBe(0o700)
  await s.close()
})

test('file store: a same-size edit and a removal made behind its back both reach the watchers; unwatched folders are not reported', async () => {
  const dir = await tmp()
  const s = await FileStore.open(dir, { pollMs: 20 })
  const events: StoreEvent[] = []
  await s.watch('policies/', (e) => events.push(e))
  await s.watch('policies/shop/', () => {}) // overlapping prefixes: the folder is scanned once
  await mkdir(join(dir, 'policies', 'shop'), { recursive: true })
  await mkdir(join(dir, 'status'), { recursive: true })
  await writeFile(join(dir, 'status', 'n1'), 'ignored')
  const wait = async (n: number): Promise<void> => {
    const end = Date.now() + 3000
    while (events.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  }
  // Scans that complete with nothing new must report nothing: wait for them to happen, not for time to pass.
  const scanned = async (n: number): Promise<void> => {
    const target = s.scans + n
    await until(() => s.scans >= target, 3000, `${n} more scans`)
  }
  await writeFile(join(dir, 'policies', 'shop', 'p.yaml'), 'x: 1\n')
  await wait(1)
  await scanned(3) // a few scans with nothing new
  expect(events).toHaveLength(1)
  await writeFile(join(dir, 'policies', 'shop', 'p.yaml'), 'x: 2\n') // same size
  await wait(2)
  await rm(join(dir, 'policies', 'shop', 'p.yaml'))
  await wait(3)
  await scanned(3) // and nothing after the removal either
  expect(events).toEqual([
    { type: 'put', key: 'policies/shop/p.yaml', value: 'x: 1\n' },
    { type: 'put', key: 'policies/shop/p.yaml', value: 'x: 2\n' },
    { type: 'delete', key: 'policies/shop/p.yaml', value: null },
  ])
  await s.close()
})

test('file store: a putAll a crash cut short after its journal is finished by the next open, one never committed is dropped', async () => {
  const dir = await tmp()
  const store = await FileStore.open(dir)
  await store.put('policies/shop/AuthorizationPolicy/a.yaml', 'old a\n')
  await store.close()
  // As putAll leaves it when killed between its commit point and the last rename: a.yaml renamed, b.yaml not yet.
  const folder = join(dir, 'policies', 'shop', 'AuthorizationPolicy')
  await writeFile(join(folder, 'a.yaml'), 'new a\n')
  await writeFile(join(folder, '.b1.tmp'), 'new b\n')
  await writeFile(join(dir, '.journal-0a1b.json'), JSON.stringify([['policies/shop/AuthorizationPolicy/.a1.tmp', 'policies/shop/AuthorizationPolicy/a.yaml'], ['policies/shop/AuthorizationPolicy/.b1.tmp', 'policies/shop/AuthorizationPolicy/b.yaml']]))
  // And one killed before its commit point: its journal is still a temp file, so nothing of it lands.
  await writeFile(join(folder, '.c1.tmp'), 'c\n')
  await writeFile(join(dir, '.journal-0c1d.json.tmp'), JSON.stringify([['policies/shop/AuthorizationPolicy/.c1.tmp', 'policies/shop/AuthorizationPolicy/c.yaml']]))
  const again = await FileStore.open(dir)
  expect(Object.fromEntries(await again.list('policies/'))).toEqual({ 'policies/shop/AuthorizationPolicy/a.yaml': 'new a\n', 'policies/shop/AuthorizationPolicy/b.yaml': 'new b\n' })
  await expect(stat(join(dir, '.journal-0a1b.json'))).rejects.toThrow()
  await expect(stat(join(dir, '.journal-0c1d.json.tmp'))).rejects.toThrow()
  await again.close()
})
