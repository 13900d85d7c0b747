import v8 from 'node:v8'
import { describe, expect, test } from 'vitest'
import { compactHeap } from '../../../../proxy/engines/common/index.js'

// compactHeap() (proxy/engines/common/read-buffers.ts) is the one full collection the proxy command
// asks for when it is idle after start: it must really collect, and on V8 14 (Node 26) give the
// young generation that start-up grew back to the system.
const newSpace = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size
const V8_MAJOR = Number(process.versions.v8.split('.')[0])

describe('compactHeap', () => {
  test('collects what is unreachable (a full collection, on every runtime)', async () => {
    let ref: WeakRef<object> | null = null
    ;(() => {
      ref = new WeakRef({ big: new Array(10_000).fill(1) })
    })()
    await new Promise((r) => setImmediate(r)) // WeakRefs are kept until the end of the job that made them
    compactHeap()
    expect(ref!.deref()).toBeUndefined()
  })

  test.runIf(V8_MAJOR >= 12)('gives back the young generation that allocation grew (V8 >= 12)', () => {
    const keep: object[] = []
    for (let i = 0; i < 2_000_000; i++) {
      const o = { i }
      if (i % 20 === 0) keep.push(o)
    }
    const grown = newSpace()
    compactHeap()
    expect(keep.length).toBe(100_000)
    expect(newSpace()).toBeLessThan(grown)
    expect(newSpace()).toBeLessThanOrEqual(2 * 1024 * 1024)
  })
})
