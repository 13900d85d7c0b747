// `remora check --jwt [--jwks]` through the real CLI dispatcher: authn + authz together, the
// status the sidecar would answer (200/401/403), the authn block, and exit codes 0/3/2.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { main } from '../../../cli/main.js'
import { createTestKey, jwks, signJws, type TestKey } from '../../helpers/jwt.js'

const ISS = 'https://issuer.test'
let dir: string
let key: TestKey
let policyFile: string
let jwksFile: string

const now = () => Math.floor(Date.now() / 1000)
const token = (claims: Record<string, unknown> = {}) => signJws({ alg: 'ES256', kid: key.kid }, { iss: ISS, sub: 'alice', aud: 'orders', exp: now() + 600, ...claims }, { key })

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-check-jwt-'))
  key = createTestKey('k', 'ES256', 'k1')
  jwksFile = join(dir, 'jwks.json')
  await writeFile(jwksFile, JSON.stringify(jwks(key)))
  policyFile = join(dir, 'p.yaml')
  await writeFile(
    policyFile,
    `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  jwtRules: [{ issuer: "${ISS}", jwksUri: "https://issuer.test/jwks", audiences: [orders] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: buyers, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules:
    - from: [{ source: { requestPrincipals: ["${ISS}/*"] } }]
      when: [{ key: "request.auth.claims[groups]", values: [buyers] }]
`,
  )
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function check(extra: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  const e = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
  try {
    const code = await main(['check', '-f', policyFile, '--dest-namespace', 'shop', '--dest-labels', 'app=orders', '--method', 'GET', '--path', '/orders', ...extra])
    return { code, out: out.join('\n'), err: err.join('\n') }
  } finally {
    log.mockRestore()
    e.mockRestore()
  }
}

describe('remora check --jwt', () => {
  test('a buyer token: 200, authn ok with the principal, exit 0', async () => {
    const r = await check(['--jwt', token({ groups: ['buyers'] }), '--jwks', jwksFile, '-o', 'json'])
    const j = JSON.parse(r.out) as { status: number; decision: string; authn: unknown }
    expect(r.code).toBe(0)
    expect(j.status).toBe(200)
    expect(j.authn).toEqual({ result: 'ok', reason: null, principal: `${ISS}/alice` })
  })

  test('a valid token without the group: 403, exit 3', async () => {
    const r = await check(['--jwt', token({ groups: ['dev'] }), '--jwks', jwksFile, '-o', 'json'])
    expect(r.code).toBe(3)
    expect(JSON.parse(r.out)).toMatchObject({ status: 403, authn: { result: 'ok' } })
  })

  test('a tampered token: 401 with the code, exit 3, and the token is not echoed', async () => {
    const t = token({ groups: ['buyers'] })
    const [h, , s] = t.split('.')
    const forged = `${h}.${Buffer.from(JSON.stringify({ iss: ISS, sub: 'root', aud: 'orders', groups: ['buyers'] })).toString('base64url')}.${s}`
    const r = await check(['--jwt', forged, '--jwks', jwksFile, '-o', 'json'])
    expect(r.code).toBe(3)
    expect(JSON.parse(r.out)).toMatchObject({ status: 401, decision: 'DENY', authn: { result: 'invalid', reason: 'REMORA_ERR_JWT_SIGNATURE', principal: null } })
    expect(r.out + r.err).not.toContain(s!)
  })

  test('no --jwks for a jwksUri rule: nothing is fetched, 401 JWKS unavailable', async () => {
    const r = await check(['--jwt', token({ groups: ['buyers'] }), '-o', 'json'])
    expect(r.code).toBe(3)
    expect(JSON.parse(r.out)).toMatchObject({ status: 401, authn: { reason: 'REMORA_ERR_JWT_JWKS_UNAVAILABLE' } })
  })

  test('text output names the authn result', async () => {
    const r = await check(['--jwt', token({ groups: ['buyers'] }), '--jwks', jwksFile])
    expect(r.code).toBe(0)
    expect(r.out).toContain(`authn:    ok as ${ISS}/alice`)
  })

  test('bad input exits 2: an unreadable --jwks, --jwks without --jwt, --jwt with --request-principal', async () => {
    expect((await check(['--jwt', token(), '--jwks', join(dir, 'missing.json')])).code).toBe(2)
    expect((await check(['--jwks', jwksFile])).code).toBe(2)
    expect((await check(['--jwt', token(), '--request-principal', 'a/b'])).code).toBe(2)
  })
})
