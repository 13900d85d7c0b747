// sidecar.yaml's jwt.leeway is the leeway a running sidecar applies: with `jwt: { leeway: 5s }` a
// token that expired 3 s ago passes and one that expired 7 s ago gets 401 REMORA_ERR_JWT_EXPIRED
// (the default 60 s would let both through), on a clock the test controls. SidecarDeps.jwt still
// wins over the file, /config_dump shows the settings in force, and `remora proxy` refuses an
// out-of-bounds flag before it listens.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { plainRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestKey, jwks, manualClock, signJws, type TestKey } from '../helpers/jwt.js'
import { runRemora } from '../helpers/process.js'

const ISS = 'https://issuer.test'
const clock = manualClock()
let pki: TestPki
let key: TestKey
let app: Upstream
const sidecars: TestSidecar[] = []

function policies(): string {
  return `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  jwtRules:
    - issuer: ${ISS}
      jwks: '${JSON.stringify(jwks(key))}'
`
}

/** A token of ISS, signed with the published key, that expired `secondsAgo` seconds ago on the sidecar's clock. */
function expiredToken(secondsAgo: number): string {
  const now = clock.sec()
  return signJws({ alg: key.alg, typ: 'JWT', kid: key.kid }, { iss: ISS, sub: 'alice', iat: now - 600, exp: now - secondsAgo }, { key })
}

async function start(o: Partial<Parameters<typeof startSidecar>[0]> = {}): Promise<TestSidecar> {
  const sc = await startSidecar({ pki, serviceAccount: 'orders', app: app.address, policies: policies(), clock, ...o })
  sidecars.push(sc)
  return sc
}

function call(sc: TestSidecar, token: string): ReturnType<typeof plainRequest> {
  return plainRequest(sc.inbound, { path: '/', headers: { host: 'orders.shop', authorization: `Bearer ${token}` } })
}

interface Dump {
  config: { jwt: Record<string, unknown> }
  jwtSettings: Record<string, unknown>
}

async function dump(sc: TestSidecar): Promise<Dump> {
  const r = await plainRequest(sc.admin, { path: '/config_dump' })
  expect(r.status).toBe(200)
  return JSON.parse(r.body) as Dump
}

beforeAll(async () => {
  pki = await createTestPki()
  key = createTestKey('ec', 'ES256', 'ec-1')
  app = await startUpstream((_req, res) => res.end('ok'))
})

afterAll(async () => {
  for (const sc of sidecars) await sc.close()
  await app?.close()
})

describe('jwt.leeway from sidecar.yaml is the leeway applied', () => {
  let sc: TestSidecar
  beforeAll(async () => {
    sc = await start({ extra: { jwt: { leeway: '5s' } } })
  })

  test('leeway 5s: a token expired 3 s ago is accepted and reaches the app', async () => {
    const hits = app.hits
    const res = await call(sc, expiredToken(3))
    expect(res.status).toBe(200)
    expect(app.hits).toBe(hits + 1)
  })

  test('leeway 5s: a token expired 7 s ago is refused 401 REMORA_ERR_JWT_EXPIRED and never reaches the app', async () => {
    const hits = app.hits
    const res = await call(sc, expiredToken(7))
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"')
    expect(res.headers['x-remora-response-flags']).toBe('JW')
    expect(res.headers['x-remora-error-code']).toBe('REMORA_ERR_JWT_EXPIRED')
    expect(sc.accessLog.at(-1)).toMatchObject({ response_code: 401, error_code: 'REMORA_ERR_JWT_EXPIRED' })
    expect(app.hits).toBe(hits)
  })

  test('a token accepted (and cached) stops verifying once exp + 5 s has passed', async () => {
    const t = expiredToken(3)
    expect((await call(sc, t)).status).toBe(200)
    clock.advance(3)
    expect((await call(sc, t)).status).toBe(401)
  })

  test('/config_dump shows the configured section and the settings in force', async () => {
    const d = await dump(sc)
    expect(d.config.jwt).toEqual({ leeway: '5s', cacheSize: 4096, jwksRefresh: '10m', jwksCooldown: '30s' })
    expect(d.jwtSettings).toEqual({ leewaySeconds: 5, cacheSize: 4096, jwksRefreshMs: 600_000, jwksCooldownMs: 30_000 })
  })
})

describe('the control cases', () => {
  test('without a jwt section the default 60 s leeway lets the 7 s-expired token through', async () => {
    const sc = await start()
    expect((await call(sc, expiredToken(7))).status).toBe(200)
    expect((await dump(sc)).jwtSettings).toMatchObject({ leewaySeconds: 60 })
  })

  test('an explicit SidecarDeps.jwt field wins over the file; the other fields still come from it', async () => {
    const sc = await start({ extra: { jwt: { leeway: '5s', cacheSize: 0 } }, jwt: { leewaySeconds: 10 } })
    expect((await call(sc, expiredToken(7))).status).toBe(200)
    expect((await call(sc, expiredToken(11))).status).toBe(401)
    const d = await dump(sc)
    expect(d.config.jwt).toMatchObject({ leeway: '5s', cacheSize: 0 })
    expect(d.jwtSettings).toMatchObject({ leewaySeconds: 10, cacheSize: 0 })
  })
})

describe('remora proxy: jwt flags are validated like the file', () => {
  test('--jwt-leeway 301s and --set jwt.cacheSize=-1: exit 2, both fields named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'remora-jwt-settings-'))
    const file = join(dir, 'sidecar.yaml')
    await writeFile(
      file,
      'apiVersion: remora.dev/v1\nkind: SidecarConfig\nworkload: { namespace: shop, serviceAccount: orders }\nidentity: { certFile: orders.pem, keyFile: orders-key.pem, caFile: ca.pem }\n',
    )
    const child = runRemora(['proxy', '--config', file, '--jwt-leeway', '301s', '--set', 'jwt.cacheSize=-1'])
    expect(await child.exited).toBe(2)
    expect(child.stderr).toMatch(/jwt\.leeway: at most 300s/)
    expect(child.stderr).toMatch(/jwt\.cacheSize: expected a number of entries 0\.\.1000000 \(0 = off\)/)
    await rm(dir, { recursive: true, force: true })
  })
})
