// RemoteJwksSource against an endpoint that never answers: one attempt per cooldown, counted from
// the end of the attempt (the reliability fault test/reliability/faults/jwks.test.ts found it
// asked back to back when the fetch timeout is at least the cooldown).
import { Agent } from 'undici'
import { afterAll, expect, test } from 'vitest'
import { RemoteJwksSource } from '../../../proxy/authn/index.js'
import { createTestKey, jwks, startJwksServer } from '../../helpers/jwt.js'

const dispatcher = new Agent()
const silent = { info: () => {}, warn: () => {} }
afterAll(async () => {
  await dispatcher.close()
})

test('a hanging JWKS endpoint is asked at most once per cooldown after the attempt timed out, and again once it has passed', async () => {
  const server = await startJwksServer(jwks(createTestKey('k', 'ES256', 'k-1')))
  server.mode = 'hang'
  const s = new RemoteJwksSource({ uri: server.url, timeoutMs: 300, cooldownMs: 300, dispatcher }, { clock: { now: () => Date.now() }, logger: silent })
  try {
    const t0 = Date.now()
    expect(await s.start().settled()).toBeNull()
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250) // the attempt ran to its timeout
    const t1 = Date.now()
    expect(await s.refresh()).toBeNull()
    expect(Date.now() - t1).toBeLessThan(150) // answered at once, from within the cooldown
    expect(server.hits).toBe(1)
    server.mode = 'ok'
    await new Promise((r) => setTimeout(r, 320)) // the cooldown passes (its scheduled retry may be the one that fetches)
    expect((await s.refresh())?.kids).toEqual(['k-1'])
    expect(server.hits).toBe(2)
  } finally {
    await s.close()
    await server.close()
  }
})
