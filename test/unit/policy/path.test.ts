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
