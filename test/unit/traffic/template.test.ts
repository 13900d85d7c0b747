// templateOf() (the recorder's one-pass template) equals the contract's pathTemplate() on the
// contract's own examples and on generated paths built from the characters its patterns test.
import { describe, expect, test } from 'vitest'
import { pathTemplate } from '../../../proxy/snapshot/index.js'
import { templateOf } from '../../../proxy/traffic/template.js'

const EXAMPLES = [
  '/', '', '/orders', '/orders/', '//orders//12', '/orders/12345', '/orders/12345?token=abc', '/api/v1/users', '/users/alice@example.com/orders',
  '/items/3f2b8c1e-4a5d-4e6f-9a0b-1c2d3e4f5a6b', '/items/3F2B8C1E-4A5D-4E6F-9A0B-1C2D3E4F5A6B', '/items/3f2b8c1e-4a5d-4e6f-9a0b-1c2d3e4f5a6', '/blob/deadbeefcafe', '/blob/deadbeefcaf',
  '/t/abcdefghijklmno1', '/t/abcdefghijklmn1', '/t/abc.def~1', '/t/abc.de1', '/t/abc_de-1', '/t/@x', '/t/x@', '/t/a@b@c', '/t/é@x', '/t/ü1abcdefgh', '?q', '/a?b/12',
  `/${'a'.repeat(300)}`, `/x/${'1'.repeat(300)}`, `/${'seg/'.repeat(80)}`,
]

// A small deterministic generator (no Math.random: a failure reproduces).
// Alphabets from the characters the patterns test; each replaces segments in 17-88 % of its paths.
const ALPHABETS = ['0123456789abcdefABCDEFxyzXYZ-_.~@%é/?', '0123456789abcdef-/', '0123456789az.~_-@/']

function* paths(n: number, alphabet: string): Generator<string> {
  let s = 42
  const next = (): number => ((s = (s * 1103515245 + 12345) & 0x7fffffff), s)
  for (let i = 0; i < n; i++) {
    let p = '/'
    const len = next() % 60
    for (let k = 0; k < len; k++) p += alphabet[next() % alphabet.length]
    yield p
  }
}

describe('templateOf', () => {
  test.each(EXAMPLES)('equals pathTemplate: %j', (p) => {
    expect(templateOf(p)).toBe(pathTemplate(p))
  })

  test.each(ALPHABETS)('equals pathTemplate on 50 000 paths generated from %j', (alphabet) => {
    const diffs: string[] = []
    let replaced = 0
    for (const p of paths(50_000, alphabet)) {
      const t = templateOf(p)
      if (t !== pathTemplate(p)) diffs.push(p)
      if (t.includes('{id}')) replaced++
    }
    expect(diffs.slice(0, 5)).toEqual([])
    expect(replaced).toBeGreaterThan(5000)
  })

  test('a path with nothing to replace is returned as it is (no new string)', () => {
    const p = '/api/orders/list'
    expect(templateOf(p)).toBe(p)
  })
})
