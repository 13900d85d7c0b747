// One conformance suite for every Store implementation (CONVENTIONS.md: one suite, every
// implementation). Run against the file store by file-store.test.ts (npm test) and against a real
// etcd by test/system/etcd-store.test.ts.
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import type { Store, StoreEvent } from '../../../control-plane/store/index.js'

export interface StoreFixture {
  store: Store
  /** A second handle on the same data (another replica, another process): its writes must reach watchers of `store`. */
  other(): Promise<Store>
  cleanup(): Promise<void>
}

async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export function storeConformance(name: string, open: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, () => {
    let fx: StoreFixture
    let s: Store
    beforeEach(async () => {
      fx = await open()
      s = fx.store
    })
    afterEach(async () => {
      await fx.cleanup()
    })

    test('get of a missing key is null; put then get returns the value', async () => {
      expect(await s.get('policies/shop/AuthorizationPolicy/a.yaml')).toBeNull()
      await s.put('policies/shop/AuthorizationPolicy/a.yaml', 'kind: x\n')
      expect(await s.get('policies/shop/AuthorizationPolicy/a.yaml')).toBe('kind: x\n')
    })

    test('put overwrites', async () => {
      await s.put('a/b', '1')
      await s.put('a/b', '2')
      expect(await s.get('a/b')).toBe('2')
    })

    test('list returns exactly the keys under a folder prefix, sorted', async () => {
      await s.put('p/z', 'z')
      await s.put('p/a/x', 'ax')
      await s.put('p/a/y', 'ay')
      await s.put('pq/no', 'no')
      await s.put('q/no', 'no')
      expect([...(await s.list('p/'))]).toEqual([
        ['p/a/x', 'ax'],
        ['p/a/y', 'ay'],
        ['p/z', 'z'],
      ])
      expect([...(await s.list('p/a/'))].map(([k]) => k)).toEqual(['p/a/x', 'p/a/y'])
      expect((await s.list('nothing/')).size).toBe(0)
    })

    test('create puts only when absent: the first writer wins', async () => {
      expect(await s.create('ca/root', 'first')).toBe(true)
      expect(await s.create('ca/root', 'second')).toBe(false)
      expect(await s.get('ca/root')).toBe('first')
    })

    test('create races from two handles: exactly one wins', async () => {
      const o = await fx.other()
      const results = await Promise.all([s.create('race/k', 'A'), o.create('race/k', 'B')])
      expect(results.filter(Boolean)).toHaveLength(1)
      const winner = results[0] ? 'A' : 'B'
      expect(await s.get('race/k')).toBe(winner)
    })

    test('delete removes and reports whether there was something', async () => {
      await s.put('d/k', 'v')
      expect(await s.delete('d/k')).toBe(true)
      expect(await s.get('d/k')).toBeNull()
      expect(await s.delete('d/k')).toBe(false)
    })

    test('putAll writes every entry; a list made meanwhile sees all of them or none, and watchers hear each', async () => {
      const keys = Array.from({ length: 20 }, (_, i) => `policies/shop/AuthorizationPolicy/g-${i}.yaml`)
      const events: StoreEvent[] = []
      const w = await s.watch('policies/', (e) => events.push(e))
      let done = false
      const seen = new Set<number>()
      const writing = s.putAll(keys.map((k, i) => [k, `n: ${i}\n`] as const)).finally(() => (done = true))
      while (!done) seen.add([...(await s.list('policies/shop/')).keys()].filter((k) => keys.includes(k)).length)
      await writing
      seen.add((await s.list('policies/shop/')).size)
      expect([...seen].filter((n) => n !== 0 && n !== keys.length)).toEqual([])
      for (const [i, k] of keys.entries()) expect(await s.get(k)).toBe(`n: ${i}\n`)
      await until(() => keys.every((k) => events.some((e) => e.type === 'put' && e.key === k)), 'a put event for every key')
      await w.close()
    })

    test('values keep any UTF-8 text, newlines included', async () => {
      const v = 'a: "é ✓"\n---\nb: [1, 2]\n'
      await s.put('u/k', v)
      expect(await s.get('u/k')).toBe(v)
    })

    test('a key with an empty, dot or dot-dot segment is refused with REMORA_ERR_STORE_BAD_KEY', async () => {
      for (const bad of ['../etc/passwd', 'a//b', 'a/./b', '/abs', 'a/b/', 'a b', '.hidden']) {
        await expect(s.put(bad, 'x'), bad).rejects.toMatchObject({ code: 'REMORA_ERR_STORE_BAD_KEY' })
      }
      await expect(s.get('a/../b')).rejects.toMatchObject({ code: 'REMORA_ERR_STORE_BAD_KEY' })
    })

    test('watch delivers puts and deletes under its prefix, and nothing else', async () => {
      const events: StoreEvent[] = []
      const w = await s.watch('policies/', (e) => events.push(e))
      await s.put('other/k', 'no')
      await s.put('policies/a', '1')
      await s.delete('policies/a')
      await until(() => events.length >= 2, 'two events')
      expect(events).toEqual([
        { type: 'put', key: 'policies/a', value: '1' },
        { type: 'delete', key: 'policies/a', value: null },
      ])
      await w.close()
      // A live watcher is the marker (no fixed wait): once it has the put, a closed one would have too.
      const live: StoreEvent[] = []
      const w2 = await s.watch('policies/', (e) => live.push(e))
      await s.put('policies/b', '2')
      await until(() => live.length >= 1, 'the put seen by a live watcher')
      expect(events).toHaveLength(2)
      await w2.close()
    })

    test("watch sees another handle's writes (another replica or process)", async () => {
      const events: StoreEvent[] = []
      const w = await s.watch('registrations/', (e) => events.push(e))
      const o = await fx.other()
      await o.put('registrations/x', '{"a":1}')
      await until(() => events.some((e) => e.key === 'registrations/x'), "the other handle's put")
      expect(events.find((e) => e.key === 'registrations/x')).toEqual({ type: 'put', key: 'registrations/x', value: '{"a":1}' })
      await o.delete('registrations/x')
      await until(() => events.some((e) => e.type === 'delete'), "the other handle's delete")
      await w.close()
    })
  })
}
