// normalizePath(): Istio's pathNormalization modes, and remora's rejections (400).
import { expect, test } from 'vitest'
import { normalizePath, type PathNormalization } from '../../../proxy/policy/index.js'

test.each<[string, PathNormalization, string | null]>([
  ['/a/b', 'MERGE_SLASHES', '/a/b'],
  ['/a/../b', 'BASE', '/b'],
  ['/a/./b/', 'BASE', '/a/b/'],
  ['/../../a', 'BASE', '/a'],
  ['/a/..', 'BASE', '/'],
  ['/a/.', 'BASE', '/a/'],
  ['/%2e%2e/admin', 'BASE', '/admin'],
  ['/%2E./admin', 'BASE', '/admin'],
  ['/%61dmin', 'BASE', '/admin'],
  ['/a%3fb', 'BASE', '/a%3Fb'],
  ['/a\\b', 'BASE', '/a/b'],
  ['//a//b', 'BASE', '//a//b'],
  ['//a//b', 'MERGE_SLASHES', '/a/b'],
  ['/a%2Fb', 'BASE', '/a%2Fb'],
  ['/a%2Fb', 'MERGE_SLASHES', null],
  ['/a%5cb', 'MERGE_SLASHES', null],
  ['/a%2Fb', 'DECODE_AND_MERGE_SLASHES', '/a/b'],
  ['/a%2F%2Fb', 'DECODE_AND_MERGE_SLASHES', '/a/b'],
  ['/a%2F..%2Fb', 'DECODE_AND_MERGE_SLASHES', '/b'],
  ['/a?x=/../b#f', 'MERGE_SLASHES', '/a'],
  ['/a#f?x', 'MERGE_SLASHES', '/a'],
  ['/a%zz', 'MERGE_SLASHES', null],
  ['/a%2', 'MERGE_SLASHES', null],
  ['/a b', 'MERGE_SLASHES', null],
  ['a/b', 'MERGE_SLASHES', null],
  ['', 'MERGE_SLASHES', null],
])('%s under %s → %s', (target, mode, want) => {
  const r = normalizePath(target, mode)
  if (want === null) expect(r.ok).toBe(false)
  else expect(r).toEqual({ ok: true, path: want, query: expect.any(String) })
})

test('the query is returned apart, without the fragment', () => {
  expect(normalizePath('/a?x=1#frag')).toEqual({ ok: true, path: '/a', query: '?x=1' })
})

test('the default mode is MERGE_SLASHES', () => {
  expect(normalizePath('//admin')).toEqual({ ok: true, path: '/admin', query: '' })
})

// Issue 13, finding 1: a percent-encoded control character is refused in every mode (an app or a
// file server that truncates at NUL, or a log/header writer that decodes CR LF, would see another path).
const MODES: readonly PathNormalization[] = ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']
const CTL_ESCAPES: string[] = []
for (let b = 0; b <= 0x1f; b++) CTL_ESCAPES.push(b.toString(16).padStart(2, '0'))
CTL_ESCAPES.push('7f')

for (const mode of MODES) {
  test(`every %00–%1F and %7F escape, in either hex case, is refused under ${mode}`, () => {
    for (const hex of CTL_ESCAPES) {
      for (const h of new Set([hex.toLowerCase(), hex.toUpperCase(), hex[0]!.toUpperCase() + hex[1]!.toLowerCase(), hex[0]!.toLowerCase() + hex[1]!.toUpperCase()])) {
        const r = normalizePath(`/admin%${h}.png`, mode)
        expect(r.ok, `%${h} under ${mode}`).toBe(false)
        if (!r.ok) expect(r.reason).toMatch(/control character/)
      }
    }
  })
}

for (const mode of MODES) {
  test(`the finding itself: /admin%00.png and /admin%0d%0aSet-Cookie:%20x=1 are refused under ${mode}`, () => {
    expect(normalizePath('/admin%00.png', mode).ok).toBe(false)
    expect(normalizePath('/admin%0d%0aSet-Cookie:%20x=1', mode).ok).toBe(false)
    expect(normalizePath('/admin%0D%0ASet-Cookie:%20x=1', mode).ok).toBe(false)
  })
}

for (const mode of MODES) {
  test(`raw control bytes and DEL are refused under ${mode} (llhttp refuses them before; this is the second line)`, () => {
    for (let b = 0; b <= 0x1f; b++) expect(normalizePath(`/a${String.fromCharCode(b)}b`, mode).ok).toBe(false)
    expect(normalizePath('/a\x7fb', mode).ok).toBe(false)
  })
}

for (const mode of MODES) {
  test(`overlong UTF-8 (%C0%80 NUL, %C0%AE ".", %C0%AF "/", %E0%80%80, %F0%80%80%80) is refused under ${mode}`, () => {
    for (const t of ['/admin%C0%80.png', '/public/%c0%ae%c0%ae/admin', '/a%C1%9Cb', '/a%C0%AFb', '/a%E0%80%80', '/a%e0%80%af', '/a%F0%80%80%80', '/a%f0%8f%bf%bf']) {
      const r = normalizePath(t, mode)
      expect(r.ok, `${t} under ${mode}`).toBe(false)
      if (!r.ok) expect(r.reason).toMatch(/overlong/)
    }
  })
}

for (const mode of MODES) {
  test(`valid UTF-8 escapes and Latin-1 bytes that are not overlong forms pass unchanged under ${mode}`, () => {
    expect(normalizePath('/caf%C3%A9', mode)).toEqual({ ok: true, path: '/caf%C3%A9', query: '' })
    expect(normalizePath('/%E2%82%AC', mode)).toEqual({ ok: true, path: '/%E2%82%AC', query: '' })
    expect(normalizePath('/%F0%9F%98%80', mode)).toEqual({ ok: true, path: '/%F0%9F%98%80', query: '' })
    expect(normalizePath('/%E0%A4%85', mode)).toEqual({ ok: true, path: '/%E0%A4%85', query: '' }) // E0 A0+: not overlong
    expect(normalizePath('/%C0', mode)).toEqual({ ok: true, path: '/%C0', query: '' }) // a lone Latin-1 "À"
  })
}

for (const mode of MODES) {
  test(`double encoding is not decoded twice under ${mode}: %2500 stays the literal %2500 (the app sees what the policy saw)`, () => {
    expect(normalizePath('/admin%2500.png', mode)).toEqual({ ok: true, path: '/admin%2500.png', query: '' })
    expect(normalizePath('/admin%250d%250a', mode)).toEqual({ ok: true, path: '/admin%250d%250a', query: '' })
  })
}

for (const mode of MODES) {
  test(`%23 and %3F stay encoded: part of the path, never a fragment or a query, under ${mode}`, () => {
    expect(normalizePath('/admin%23x', mode)).toEqual({ ok: true, path: '/admin%23x', query: '' })
    expect(normalizePath('/admin%3fx=1', mode)).toEqual({ ok: true, path: '/admin%3Fx=1', query: '' })
  })
}

test('a percent-encoded control character in the query is not the path\'s business (passed as received, as Envoy does)', () => {
  expect(normalizePath('/a?x=%00%0d%0a')).toEqual({ ok: true, path: '/a', query: '?x=%00%0d%0a' })
})
