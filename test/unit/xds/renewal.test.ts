// Renewal decides when a certificate is renewed, on injected timers and an injected clock: 70 % of
// the lifetime counted from arrival, a failed attempt retried after a tenth of what is left
// (200 ms … 10 s), one attempt at a time, nothing after close().
import { describe, expect, test } from 'vitest'
import { Renewal, type Lifetime, type Timers } from '../../../proxy/xds/renewal.js'

/** Timers driven by hand: `advanceTo(t)` moves the clock and fires every timer due by then. */
function manualTimers(clock: { t: number }): Timers & { due(): number[]; advanceTo(t: number): Promise<void> } {
  let next = 1
  const pending = new Map<number, { at: number; fn: () => void }>()
  return {
    setTimeout(fn, ms) {
      const id = next++
      pending.set(id, { at: clock.t + ms, fn })
      return id
    },
    clearTimeout(h) {
      pending.delete(h as number)
    },
    due: () => [...pending.values()].map((p) => p.at).sort((a, b) => a - b),
    async advanceTo(t) {
      clock.t = t
      for (const [id, p] of [...pending]) {
        if (p.at > t) continue
        pending.delete(id)
        p.fn()
      }
      // let the attempt's promise settle
      for (let i = 0; i < 5; i++) await Promise.resolve()
    },
  }
}

function setup(results: ('ok' | 'fail')[], first: Lifetime = { issuedAt: 0, notAfter: 100_000 }) {
  const clock = { t: 0, now: () => clock.t }
  const timers = manualTimers(clock)
  let cur: Lifetime | null = first
  const attempts: number[] = []
  const failures: number[] = []
  const r = new Renewal(
    {
      renewAt: 0.7,
      renew: async () => {
        attempts.push(clock.t)
        if (results.shift() === 'fail') throw new Error('control plane down')
        cur = { issuedAt: clock.t, notAfter: clock.t + 100_000 }
        return cur
      },
      current: () => cur,
      onFailure: (_e, left) => failures.push(left),
    },
    { clock, timers },
  )
  return { r, clock, timers, attempts, failures }
}

describe('Renewal', () => {
  test('renews at 70 % of the lifetime, then again at 70 % of the new one', async () => {
    const s = setup(['ok', 'ok'])
    s.r.schedule({ issuedAt: 0, notAfter: 100_000 })
    expect(s.timers.due()).toEqual([70_000])
    await s.timers.advanceTo(69_999)
    expect(s.attempts).toEqual([])
    await s.timers.advanceTo(70_000)
    expect(s.attempts).toEqual([70_000])
    expect(s.timers.due()).toEqual([140_000])
    await s.timers.advanceTo(140_000)
    expect(s.attempts).toEqual([70_000, 140_000])
  })

  test('a failed attempt is retried after a tenth of what is left, and is reported', async () => {
    const s = setup(['fail', 'fail', 'ok'])
    s.r.schedule({ issuedAt: 0, notAfter: 100_000 })
    await s.timers.advanceTo(70_000)
    expect(s.failures).toEqual([30_000])
    expect(s.timers.due()).toEqual([73_000]) // 30 s left / 10
    await s.timers.advanceTo(73_000)
    expect(s.failures).toEqual([30_000, 27_000])
    expect(s.timers.due()).toEqual([75_700])
    await s.timers.advanceTo(75_700)
    expect(s.attempts).toEqual([70_000, 73_000, 75_700])
    expect(s.timers.due()).toEqual([75_700 + 70_000])
  })

  test('the retry delay stays within 200 ms … 10 s', async () => {
    const s = setup(['fail', 'fail'], { issuedAt: 0, notAfter: 1_000_000 })
    s.r.schedule({ issuedAt: 0, notAfter: 1_000_000 })
    await s.timers.advanceTo(700_000)
    expect(s.timers.due()).toEqual([710_000]) // 300 s left → capped at 10 s
    const near = setup(['fail'], { issuedAt: 0, notAfter: 1_000 })
    near.r.schedule({ issuedAt: 0, notAfter: 1_000 })
    await near.timers.advanceTo(700)
    expect(near.timers.due()).toEqual([900]) // 300 ms left → at least 200 ms
  })

  test('close() cancels what is scheduled: no attempt afterwards', async () => {
    const s = setup(['ok'])
    s.r.schedule({ issuedAt: 0, notAfter: 100_000 })
    s.r.close()
    expect(s.timers.due()).toEqual([])
    await s.timers.advanceTo(200_000)
    expect(s.attempts).toEqual([])
  })
})
