import { describe, expect, test } from 'vitest'
import { isoTime } from '../../../proxy/stages/access-log.js'

// The access line's start_time is made per second and completed per request (proxy/stages/access-log.ts):
// it must be exactly what Date#toISOString gives, whatever the order of the times asked for.
describe('isoTime', () => {
  test('equals toISOString for times within a second, across seconds, and going back', () => {
    const base = Date.UTC(2026, 11, 3, 11, 59, 59, 0)
    const times = [base, base + 1, base + 9, base + 10, base + 99, base + 100, base + 999, base + 1000, base + 1001, base - 1, base + 86_400_000 + 5, 0, 1, 999, Date.UTC(9999, 11, 31, 23, 59, 59, 999)]
    for (let i = 0; i < 2000; i++) times.push(Math.floor(Math.random() * 4_102_444_800_000))
    for (const t of times) expect(isoTime(t)).toBe(new Date(t).toISOString())
  })

  test('times outside what the shortcut covers fall back to toISOString', () => {
    for (const t of [-1, -86_400_001, 1.5, Date.UTC(10000, 0, 1)]) expect(isoTime(t)).toBe(new Date(t).toISOString())
  })
})
