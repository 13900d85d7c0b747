// The verified-token cache (bounded LRU, entries never outliving exp + leeway) and the JWKS
// sources: provided keys (the control-plane seam), fetched keys with cooldown, last good set and
// fail closed, against a real JWKS server on loopback.
import { Agent } from 'undici'
import { afterAll, describe, expect, test } from 'vitest'
import { buildKeySet, createProvidedJwksSource, RemoteJwksSource, VerifiedTokenCache, type VerifiedToken } from '../../../proxy/authn/index.js'
import { createTestKey, jwks, manualClock, startJwksServer } from '../../helpers/jwt.js'
import { freePort } from '../../helpers/upstream.js'

const k1 = createTestKey('a', 'ES256', 'k1')
const k2 = createTestKey('b', 'ES256', 'k2')
const set = buildKeySet(jwks(k1)).set
const entry = (validUntil: number, cachedUntil = Infinity): VerifiedToken => ({
  auth: { principal: 'i/s', audiences: [], presenter: null, claims: {} },
  payloadSegment: 'e30',
  rule: 0,
  keys: set,
  validUntil,
  cachedUntil,
})
const silent = { info() {}, warn() {} }

describe('VerifiedTokenCache', () => {
  test('is bounded: the least recently used entry goes first', () => {
    const c = new VerifiedTokenCache(2)
    c.set('a', entry(Infinity))
    c.set('b', entry(Infinity))
    expect(c.get('a', 0)).toBeDefined() // a is now the most recent
    c.set('c', entry(Infinity))
    expect(c.size).toBe(2)
    expect(c.get('b', 0)).toBeUndefined()
    expect(c.get('a', 0)).toBeDefined()
  })

  test('an entry dies the second its token would stop verifying', () => {
    const c = new VerifiedTokenCache(10)
    c.set('a', entry(100))
    expect(c.get('a', 99_999)).toBeDefined()
    expect(c.get('a', 100_000)).toBeUndefined()
    expect(c.size).toBe(0)
  })

  test('a token without exp is re-verified after cachedUntil', () => {
    const c = new VerifiedTokenCache(10)
    c.set('a', entry(Infinity, 5000))
    expect(c.get('a', 4999)).toBeDefined()
    expect(c.get('a', 5000)).toBeUndefined()
  })
})

describe('buildKeySet', () => {
  test('skips unusable keys by index and kid, never imports private members', () => {
    const { set: s, skipped } = buildKeySet({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }, { ...k1.jwk, d: 'ignored' }, { kty: 'EC', crv: 'P-256', x: '!!', y: '!!', kid: 'bad' }] })
    expect(s.kids).toEqual(['k1'])
    expect(skipped.map((x) => [x.index, x.kid])).toEqual([
      [0, 'h'],
      [2, 'bad'],
    ])
    expect(JSON.stringify(skipped)).not.toContain('c2VjcmV0')
  })

  test('equal sets have equal fingerprints', () => {
    expect(buildKeySet(jwks(k1, k2)).set.fingerprint).toBe(buildKeySet(jwks(k1, k2)).set.fingerprint)
    expect(buildKeySet(jwks(k1)).set.fingerprint).not.toBe(buildKeySet(jwks(k2)).set.fingerprint)
  })
})

describe('provided JWKS (keys shipped by the control plane)', () => {
  test('nothing until pushed; an identical push keeps the same set; an empty push never erases keys', async () => {
    const p = createProvidedJwksSource()
    expect(p.current()).toBeNull()
    p.update(jwks(k1))
    const first = p.current()
    expect(first?.kids).toEqual(['k1'])
    p.update(jwks(k1))
    expect(p.current()).toBe(first)
    p.update({ keys: [] })
    expect(p.current()).toBe(first)
    p.update(jwks(k1, k2))
    expect((await p.refresh('unknown-kid'))?.kids).toEqual(['k1', 'k2'])
  })
})

describe('RemoteJwksSource', () => {
  const dispatcher = new Agent()
  afterAll(() => dispatcher.close())

  test('fetches, refetches at most once per cooldown, and keeps the last good set when the endpoint dies', async () => {
    const server = await startJwksServer(jwks(k1))
    const clock = manualClock()
    const s = new RemoteJwksSource({ uri: server.url, timeoutMs: 2000, cooldownMs: 30_000, dispatcher }, { clock, logger: silent }).start()
    expect((await s.settled())?.kids).toEqual(['k1'])
    expect(server.hits).toBe(1)
    server.body = jwks(k1, k2)
    expect((await s.refresh())?.kids).toEqual(['k1']) // inside the cooldown: no fetch
    expect(server.hits).toBe(1)
    clock.advance(31)
    expect((await s.refresh())?.kids).toEqual(['k1', 'k2'])
    expect(server.hits).toBe(2)
    await server.close()
    clock.advance(31)
    expect((await s.refresh())?.kids).toEqual(['k1', 'k2']) // down: last good set
    await s.close()
  })

  test('an endpoint that never answered gives no keys (the authenticator fails closed) and reports the failed fetch', async () => {
    const port = await freePort()
    const events: string[] = []
    const s = new RemoteJwksSource({ uri: `http://127.0.0.1:${port}/jwks`, timeoutMs: 1000, dispatcher }, { clock: manualClock(), logger: silent, events: { onFetch: (_u, o) => void events.push(o) } }).start()
    expect(await s.settled()).toBeNull()
    expect(events).toEqual(['error'])
    await s.close()
  })
})
