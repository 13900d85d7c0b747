// `remora check --jwt [--jwks]` and `--jwks` alone through the real CLI dispatcher: authn + authz
// together, the status the sidecar would answer (200/401/403), the authn block, and exit codes
// 0/3/2; the token matrix (with the no-token row) offline and against a live control plane.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { main } from '../../../cli/main.js'
import { createTestKey, jwks, signJws, type TestKey } from '../../helpers/jwt.js'
import { startTestControlPlane, type TestControlPlane } from '../../helpers/control-plane.js'

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
    - to: [{ operation: { paths: ["/health"] } }]
`,
  )
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function check(extra: string[], source: string[] = ['-f', policyFile]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  const e = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
  try {
    const code = await main(['check', ...source, '--dest-namespace', 'shop', '--dest-labels', 'app=orders', '--method', 'GET', ...(extra.includes('--path') ? [] : ['--path', '/orders']), ...extra])
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

  test('bad input exits 2: an unreadable --jwks (with or without --jwt), --jwt or --jwks with --request-principal', async () => {
    expect((await check(['--jwt', token(), '--jwks', join(dir, 'missing.json')])).code).toBe(2)
    expect((await check(['--jwks', join(dir, 'missing.json')])).code).toBe(2)
    expect((await check(['--jwt', token(), '--request-principal', 'a/b'])).code).toBe(2)
    const r = await check(['--jwks', jwksFile, '--request-principal', 'a/b'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--jwks and --request-principal are exclusive')
  })

  test('--jwt given twice is an error, not a check of the last token only', async () => {
    const r = await check(['--jwt', token({ groups: ['dev'] }), '--jwt', token({ groups: ['buyers'] }), '--jwks', jwksFile])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--jwt is given twice')
    expect((await check(['--jwt', token({ groups: ['buyers'] }), '--jwks', jwksFile, '--jwks', jwksFile])).code).toBe(2)
  })
})

// One matrix, the same flags on every row: what a security team scripts over tokens.
const ROWS: { row: string; jwt: () => string[]; path?: string; status: number; code: number; authn: string }[] = [
  { row: 'a buyer token', jwt: () => ['--jwt', token({ groups: ['buyers'] })], status: 200, code: 0, authn: 'ok' },
  { row: 'a token without the group', jwt: () => ['--jwt', token({ groups: ['dev'] })], status: 403, code: 3, authn: 'ok' },
  { row: 'an expired token', jwt: () => ['--jwt', token({ groups: ['buyers'], exp: now() - 3600 })], status: 401, code: 3, authn: 'invalid' },
  { row: 'no token, where a principal is required', jwt: () => [], status: 403, code: 3, authn: 'missing' },
  { row: 'no token, where the policy allows anonymous callers', jwt: () => [], path: '/health', status: 200, code: 0, authn: 'missing' },
  { row: 'no --jwt, the buyer token in the request\'s own Authorization header', jwt: () => ['--header', `authorization: Bearer ${token({ groups: ['buyers'] })}`], status: 200, code: 0, authn: 'ok' },
]

describe('the token matrix with --jwks on every row (no-token rows included)', () => {
  let cp: TestControlPlane
  let server: string[]
  const saved = process.env.REMORA_CONFIG

  beforeAll(async () => {
    cp = await startTestControlPlane()
    process.env.REMORA_CONFIG = cp.cliEnv.REMORA_CONFIG
    server = ['--server', `https://${cp.address}`]
    const quiet = vi.spyOn(console, 'log').mockImplementation(() => {})
    try {
      expect(await main(['apply', '-f', policyFile, ...server])).toBe(0)
    } finally {
      quiet.mockRestore()
    }
  })

  afterAll(async () => {
    if (saved === undefined) delete process.env.REMORA_CONFIG
    else process.env.REMORA_CONFIG = saved
    await cp?.close()
  })

  for (const where of ['offline (-f)', 'live (--server)'] as const) {
    for (const r of ROWS) {
      test(`${where}: ${r.row}: ${r.status}, exit ${r.code}, authn ${r.authn}`, async () => {
        const res = await check([...r.jwt(), '--jwks', jwksFile, '--path', r.path ?? '/orders', '-o', 'json'], where === 'live (--server)' ? server : ['-f', policyFile])
        expect(res.err).not.toContain('remora check:')
        expect(res.code).toBe(r.code)
        const j = JSON.parse(res.out) as { status: number; authn: { result: string; principal: string | null }; request: { request: { headers: Record<string, string> } } | null }
        expect(j.status).toBe(r.status)
        expect(j.authn.result).toBe(r.authn)
        if (r.authn === 'missing') expect(j.authn.principal).toBeNull()
        // A token the caller put in a header is not echoed back.
        expect(JSON.stringify(j.request)).not.toMatch(/eyJ/)
      })
    }
  }

  test('text output of the no-token row says the request is unauthenticated', async () => {
    const r = await check(['--jwks', jwksFile])
    expect(r.code).toBe(3)
    expect(r.out).toMatch(/^DENY \(403\)/)
    expect(r.out).toContain('authn:    missing (no token in a configured location: the request is unauthenticated)')
  })
})
