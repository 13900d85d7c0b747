// authnJwt with a fake JwtAuthenticator (the interface in proxy/authn): what the stage does with
// each outcome — ok sets ctx.auth and the output headers, invalid is the 401 code, missing passes
// unauthenticated — and that a caller can never inject a JWT output header. Token verification
// itself is the authenticator's (test/unit/authn, test/cases).
import { describe, expect, test } from 'vitest'
import { VerifiedTokenCache, type AuthenticatedToken, type JwtAuthenticator, type JwtOutcome } from '../../../proxy/authn/index.js'
import type { CompiledJwtRule, JwtLocation, RequestAuth } from '../../../proxy/policy/index.js'
import type { RequestContext } from '../../../proxy/pipeline/index.js'
import { createAuthnJwtStage } from '../../../proxy/stages/index.js'
import { proxyErrorOf, recordingNext, sanitizedContext, type RequestOptions } from './context.js'

const BEARER: JwtLocation = { kind: 'header', name: 'authorization', prefix: 'Bearer ' }

function rule(over: Partial<CompiledJwtRule> = {}): CompiledJwtRule {
  return {
    id: 'shop/jwt jwtRules[0]',
    policy: 'shop/jwt',
    index: 0,
    issuer: 'https://issuer.test',
    audiences: [],
    jwksUri: null,
    jwks: { keys: [] },
    locations: [BEARER],
    forwardOriginalToken: false,
    outputPayloadToHeader: 'x-jwt-payload',
    outputClaimToHeaders: [
      { header: 'x-jwt-sub', claim: ['sub'] },
      { header: 'x-jwt-groups', claim: ['groups'] },
      { header: 'x-jwt-tenant', claim: ['org', 'tenant'] },
      { header: 'x-jwt-note', claim: ['note'] },
    ],
    timeoutMs: 5000,
    ...over,
  }
}

const AUTH: RequestAuth = {
  principal: 'https://issuer.test/alice',
  audiences: ['orders'],
  presenter: null,
  claims: { sub: 'alice', groups: ['admin', 'dev'], org: { tenant: 't1' }, note: 'line\nbreak' },
}

function ok(r: CompiledJwtRule, at: JwtLocation = BEARER): JwtOutcome {
  const token: AuthenticatedToken = {
    rule: r,
    at: { location: at, key: 'k', rules: [0] },
    verified: { auth: AUTH, payloadSegment: 'eyJzdWIiOiJhbGljZSJ9', rule: 0, keys: {} as never, validUntil: Infinity, cachedUntil: Infinity },
  }
  return { result: 'ok', auth: AUTH, tokens: [token], cached: false }
}

/** A JwtAuthenticator that answers `outcome` and records what it was asked. */
function fakeAuthenticator(outcome: JwtOutcome, rules: readonly CompiledJwtRule[] = [rule()]) {
  const inputs: { rawHeaders: readonly string[]; query: string }[] = []
  const a: JwtAuthenticator = {
    rules,
    outputHeaders: ['x-jwt-payload', 'x-jwt-sub', 'x-jwt-groups', 'x-jwt-tenant', 'x-jwt-note'],
    cache: new VerifiedTokenCache(0),
    authenticate: async (input) => {
      inputs.push(input)
      return outcome
    },
  }
  return { a, inputs }
}

const FORGED = ['X-Jwt-Sub', 'mallory', 'X-Jwt-Payload', 'forged']

async function run(outcome: JwtOutcome, o: RequestOptions = {}, rules?: readonly CompiledJwtRule[]) {
  const { a, inputs } = fakeAuthenticator(outcome, rules)
  const results: [RequestContext, JwtOutcome][] = []
  const next = recordingNext()
  const ctx = sanitizedContext({ rawHeaders: ['Authorization', 'Bearer t.o.k', ...FORGED], ...o })
  const done = createAuthnJwtStage({ authenticator: a, onResult: (c, out) => void results.push([c, out]) })(next)(ctx)
  return { ctx, next, results, inputs, done }
}

describe('authnJwt', () => {
  test('ok: ctx.auth is set, the output headers carry the payload and claims, the token is not forwarded', async () => {
    const r = await run(ok(rule()))
    await r.done
    expect(r.next.calls).toEqual([r.ctx])
    expect(r.ctx.auth).toEqual(AUTH)
    expect(r.ctx.headers).toMatchObject({ 'x-jwt-payload': 'eyJzdWIiOiJhbGljZSJ9', 'x-jwt-sub': 'alice', 'x-jwt-groups': 'admin,dev', 'x-jwt-tenant': 't1' })
    expect(r.ctx.headers).not.toHaveProperty('authorization')
  })

  test('ok: a claim whose value could split a header line is not output', async () => {
    const r = await run(ok(rule()))
    await r.done
    expect(r.ctx.headers).not.toHaveProperty('x-jwt-note')
  })

  test('ok with forwardOriginalToken: the Authorization header is forwarded', async () => {
    const r = rule({ forwardOriginalToken: true })
    const x = await run(ok(r), {}, [r])
    await x.done
    expect(x.ctx.headers.authorization).toBe('Bearer t.o.k')
  })

  test('ok from a query parameter: the parameter is removed from ctx.query, the others stay', async () => {
    const at: JwtLocation = { kind: 'param', name: 'access_token' }
    const r = rule({ locations: [at] })
    const x = await run(ok(r, at), { target: '/orders?page=2&access_token=t.o.k' }, [r])
    await x.done
    expect(x.inputs[0]!.query).toBe('?page=2&access_token=t.o.k')
    expect(x.ctx.query).toBe('?page=2')
  })

  test('invalid: the 401 catalog code is thrown with its detail and next never runs', async () => {
    const r = await run({ result: 'invalid', code: 'REMORA_ERR_JWT_EXPIRED', detail: 'exp 1700000000 is in the past', issuer: 'https://issuer.test' })
    const err = await proxyErrorOf(r.done)
    expect(err).toMatchObject({ code: 'REMORA_ERR_JWT_EXPIRED', status: 401, flag: 'JW', detail: 'exp 1700000000 is in the past' })
    expect(r.next.calls).toHaveLength(0)
    expect(r.ctx.auth).toBeNull()
  })

  test('missing: the request passes unauthenticated, and forged output headers are stripped', async () => {
    const r = await run({ result: 'missing' }, { rawHeaders: FORGED })
    await r.done
    expect(r.next.calls).toEqual([r.ctx])
    expect(r.ctx.auth).toBeNull()
    expect(r.ctx.headers).not.toHaveProperty('x-jwt-sub')
    expect(r.ctx.headers).not.toHaveProperty('x-jwt-payload')
  })

  test.each([
    ['ok', ok(rule())],
    ['missing', { result: 'missing' } as JwtOutcome],
    ['invalid', { result: 'invalid', code: 'REMORA_ERR_JWT_SIGNATURE', detail: 'bad signature', issuer: null } as JwtOutcome],
  ])('onResult is called once with the outcome (%s)', async (_name, outcome) => {
    const r = await run(outcome)
    await r.done.catch(() => {})
    expect(r.results).toEqual([[r.ctx, outcome]])
  })

  test('the authenticator sees the raw header lines as received (a repeated Authorization stays visible)', async () => {
    const r = await run({ result: 'missing' }, { rawHeaders: ['Authorization', 'Bearer a.b.c', 'authorization', 'Bearer d.e.f'] })
    await r.done
    expect(r.inputs).toEqual([{ rawHeaders: ['Host', 'orders.shop', 'Authorization', 'Bearer a.b.c', 'authorization', 'Bearer d.e.f'], query: '' }])
  })

  test('no authenticator, or one without rules: the stage is left out', () => {
    const next = recordingNext()
    expect(createAuthnJwtStage({ authenticator: null })(next)).toBe(next)
    expect(createAuthnJwtStage({ authenticator: fakeAuthenticator({ result: 'missing' }, []).a })(next)).toBe(next)
  })
})
