// The JWT attack matrix (jwt.ts) replayed through a running sidecar: real inbound listener, real
// JWKS endpoints on loopback, an app that counts hits, a clock the test moves. Every 401 carries
// WWW-Authenticate, flag JW and its stable code, and never reaches the app. The last test greps
// everything the sidecar said during the suite for tokens and key material.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { JwtOutcome } from '../../proxy/authn/index.js'
import { createTestPki } from '../helpers/pki.js'
import { plainRequest, rawExchange, startSidecar, until, type Reply, type TestSidecar } from '../helpers/mesh.js'
import { freePort, startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestKey, jwks, manualClock, signJws, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwt.js'
import { BACKUP_ISS, INLINE_ISS, ISS, NEVER_ISS, jwtCases, type JwtCase, type TokenSpec } from './jwt.js'

const clock = manualClock()
let keys: Record<'rsa' | 'ec' | 'ed' | 'rsa2' | 'backup' | 'never' | 'attacker', TestKey>
let issuer: JwksServer
let backup: JwksServer
let attacker: JwksServer
let app: Upstream
let sc: TestSidecar
const outcomes: JwtOutcome[] = []
/** Everything secret the suite produced: every token sent and the private keys. */
const secrets = new Set<string>()
/** Proxy-generated replies (bodies and headers) and the admin dumps: they must hold no secret. */
const proxyOutput: string[] = []

function policies(neverPort: number): string {
  return `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  jwtRules:
    - issuer: ${ISS}
      jwksUri: ${issuer.url}
      audiences: [orders]
      outputPayloadToHeader: x-jwt-payload
      outputClaimToHeaders:
        - { header: x-jwt-sub, claim: sub }
        - { header: x-jwt-groups, claim: groups }
        - { header: x-jwt-region, claim: org.region }
    - issuer: ${BACKUP_ISS}
      jwksUri: ${backup.url}
    - issuer: ${NEVER_ISS}
      jwksUri: http://127.0.0.1:${neverPort}/jwks
    - issuer: ${INLINE_ISS}
      jwks: '${JSON.stringify(jwks(keys.ed))}'
      fromHeaders: [{ name: x-token }]
      forwardOriginalToken: true
---
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules:
    - to: [{ operation: { paths: ["/open"] } }]
    - from: [{ source: { requestPrincipals: ["*"] } }]
      to: [{ operation: { paths: ["/any"] } }]
    - to: [{ operation: { paths: ["/buyers"] } }]
      when: [{ key: "request.auth.claims[groups]", values: [buyers] }]
    - to: [{ operation: { paths: ["/nested"] } }]
      when: [{ key: "request.auth.claims[org][region]", values: [eu] }]
    - to: [{ operation: { paths: ["/email"] } }]
      when: [{ key: "request.auth.claims[email]", values: ["*@example.com"] }]
    - from: [{ source: { requestPrincipals: ["${ISS}/*"] } }]
      to: [{ operation: { paths: ["/issuer"] } }]
    - from: [{ source: { requestPrincipals: ["*/alice"] } }]
      to: [{ operation: { paths: ["/alice"] } }]
`
}

beforeAll(async () => {
  keys = {
    rsa: createTestKey('rsa', 'RS256', 'rsa-1', { withAlg: true }),
    ec: createTestKey('ec', 'ES256', 'ec-1'),
    ed: createTestKey('ed', 'EdDSA', 'ed-1'),
    rsa2: createTestKey('rsa2', 'RS256', 'rsa-2', { withAlg: true }),
    backup: createTestKey('backup', 'ES256', 'backup-1'),
    never: createTestKey('never', 'ES256', 'never-1'),
    attacker: createTestKey('attacker', 'RS256', 'evil', { withAlg: true }),
  }
  for (const k of Object.values(keys)) for (const s of k.secrets) secrets.add(s)
  issuer = await startJwksServer(jwks(keys.rsa, keys.ec))
  backup = await startJwksServer(jwks(keys.backup))
  attacker = await startJwksServer(jwks(keys.attacker))
  app = await startUpstream()
  const pki = await createTestPki()
  sc = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: app.address,
    policies: policies(await freePort()),
    clock,
    jwt: { onResult: (o) => void outcomes.push(o), jwks: { cooldownMs: 30_000 } },
  })
  // Both fetchable key sets are in before the first request (the unreachable one never is).
  await until(() => sc.sidecar.jwks.status().filter((s) => s.kids !== null).length === 2, 5000, 'JWKS fetched')
})

afterAll(async () => {
  await sc?.close()
  await app?.close()
  for (const s of [issuer, backup, attacker]) await s?.close()
})

let previousToken: string | null = null

function resolve(v: unknown): unknown {
  return v !== null && typeof v === 'object' && '$rel' in (v as object) ? clock.sec() + (v as { $rel: number }).$rel : v
}

function forge(spec: TokenSpec, row: number): string {
  const now = clock.sec()
  const signer = spec.sign === 'none' || spec.sign === 'hs256-rsa-pub' ? null : keys[spec.sign]
  const alg = spec.alg ?? signer?.alg ?? 'none'
  const kid = spec.kid === undefined ? signer?.kid : spec.kid
  const header: Record<string, unknown> = { alg, typ: 'JWT', ...(kid !== null && kid !== undefined ? { kid } : {}) }
  for (const [k, v] of Object.entries(spec.header ?? {})) {
    header[k] = v === '<attacker>' ? `${attacker.url}${k === 'x5u' ? '?x5u' : ''}` : v === '<attacker-jwk>' ? keys.attacker.jwk : v
  }
  const claims: Record<string, unknown> = { iss: ISS, sub: 'alice', aud: 'orders', iat: now, exp: now + 3600, jti: `row-${row}` }
  for (const [k, v] of Object.entries(spec.claims ?? {})) claims[k] = resolve(v)
  for (const k of spec.drop ?? []) delete claims[k]
  if (spec.tamper === 'pad-9k') claims.pad = 'x'.repeat(9000)
  const how = spec.sign === 'none' ? 'none' : spec.sign === 'hs256-rsa-pub' ? { hmac: keys.rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string } : { key: signer! }
  let t = signJws(header, claims, how)
  const [h, p, s] = t.split('.') as [string, string, string]
  if (spec.tamper === 'payload') t = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url')}.${s}`
  else if (spec.tamper === 'signature') t = `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`
  else if (spec.tamper === 'truncate') t = `${h}.${p}.${s.slice(0, -8)}`
  else if (spec.tamper === 'drop-signature') t = `${h}.${p}`
  return t
}

function parseRaw(raw: string): Reply {
  const [head, ...rest] = raw.split('\r\n\r\n')
  const lines = head!.split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers, body: rest.join('\r\n') }
}

async function send(c: JwtCase, token: string | null): Promise<Reply> {
  const path = c.path ?? '/any'
  const headers: Record<string, string> = { host: 'orders.shop', ...c.headers }
  let target = path
  if (token !== null) {
    switch (c.send ?? 'bearer') {
      case 'bearer':
        headers.authorization = `Bearer ${token}`
        break
      case 'bearer-lowercase':
        headers.authorization = `bearer ${token}`
        break
      case 'x-token':
        headers['x-token'] = token
        break
      case 'x-api-token':
        headers['x-api-token'] = token
        break
      case 'query-access_token':
        target = `${path}?access_token=${token}`
        break
      case 'basic':
        break
      case 'two-authorization': {
        const raw = await rawExchange(sc.inbound, `GET ${path} HTTP/1.1\r\nHost: orders.shop\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer forged.e30.sig\r\nConnection: close\r\n\r\n`)
        return parseRaw(raw)
      }
    }
  }
  if (c.send === 'basic') headers.authorization = 'Basic YWxpY2U6cHc='
  return plainRequest(sc.inbound, { path: target, headers })
}

describe('the JWT attack matrix', () => {
  test('has at least 30 rows, unique names, every outcome, a code on every 401', () => {
    expect(jwtCases.length).toBeGreaterThanOrEqual(30)
    expect(new Set(jwtCases.map((c) => c.name)).size).toBe(jwtCases.length)
    for (const s of [200, 401, 403] as const) expect(jwtCases.some((c) => c.expect === s)).toBe(true)
    for (const c of jwtCases) if (c.expect === 401) expect(c.code, c.name).toBeDefined()
  })
})

describe('JWT cases through a running sidecar', () => {
  jwtCases.forEach((c, row) => {
    test(`${c.name} → ${c.expect}${c.code ? ` ${c.code}` : ''}`, async () => {
      if (c.step === 'rotate') {
        issuer.body = jwks(keys.rsa, keys.ec, keys.rsa2)
        clock.advance(31)
      } else if (c.step === 'backup-down') {
        await backup.close()
      } else if (c.step === 'advance-61s') {
        clock.advance(61)
      }
      const token = c.sameTokenAsPrevious ? previousToken : c.token ? forge(c.token, row) : c.send === 'basic' ? 'basic' : null
      if (token !== null && c.send !== 'basic') secrets.add(token)
      previousToken = token
      const hits = app.hits
      const fetches = issuer.hits
      const nOutcomes = outcomes.length
      const res = await send(c, c.send === 'basic' ? 'x' : token)
      expect(res.status).toBe(c.expect)
      expect(app.hits).toBe(c.expect === 200 ? hits + 1 : hits)
      if (c.expect !== 200) proxyOutput.push(JSON.stringify(res))
      const line = sc.accessLog.at(-1)!
      if (c.expect === 401) {
        expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"')
        expect(res.headers['x-remora-response-flags']).toBe('JW')
        expect(res.headers['x-remora-error-code']).toBe(c.code)
        expect(line.response_flags).toBe('JW')
        expect(line.error_code).toBe(c.code)
        expect(outcomes.at(-1)).toMatchObject({ result: 'invalid', code: c.code })
      } else if (c.expect === 403) {
        expect(res.headers['x-remora-response-flags']).toBe('AZ')
        expect(res.body).toBe('RBAC: access denied')
      } else {
        expect(line.response_code).toBe(200)
      }
      if (c.expect === 200 && outcomes.length > nOutcomes && outcomes.at(-1)!.result === 'ok') {
        expect(line.request_principal).toMatch(/^https:\/\/[a-z.]+\/\w+$/)
      }
      for (const [name, want] of Object.entries(c.appSees ?? {})) {
        const seen = app.requests.at(-1)!.headers[name]
        expect(seen, name).toBe(want === '<token>' ? token : (want ?? undefined))
      }
      if (c.cached !== undefined) expect(outcomes.at(-1)).toMatchObject({ result: 'ok', cached: c.cached })
      if (c.jwksFetches !== undefined) expect(issuer.hits - fetches).toBe(c.jwksFetches)
    })
  })

  test('outputPayloadToHeader carries the verified payload, base64url', async () => {
    const t = forge({ sign: 'rsa', claims: { groups: ['buyers'] } }, 1000)
    secrets.add(t)
    const res = await plainRequest(sc.inbound, { path: '/any', headers: { host: 'orders.shop', authorization: `Bearer ${t}` } })
    expect(res.status).toBe(200)
    const payload = JSON.parse(Buffer.from(String(app.requests.at(-1)!.headers['x-jwt-payload']), 'base64url').toString()) as Record<string, unknown>
    expect(payload).toMatchObject({ iss: ISS, sub: 'alice', groups: ['buyers'] })
  })

  test('the attacker JWKS endpoint was never contacted (jku / x5u / jwk are not followed)', () => {
    expect(attacker.hits).toBe(0)
  })

  test('fail closed is logged: jwt_jwks_unavailable names the issuer', () => {
    const l = sc.logger.lines.find((x) => (x.obj as { event?: string }).event === 'jwt_jwks_unavailable')
    expect(l?.obj).toMatchObject({ issuer: NEVER_ISS })
    expect(sc.logger.lines.some((x) => (x.obj as { event?: string }).event === 'jwks_fetch_failed')).toBe(true)
  })

  test('config_dump shows issuers and kids, never keys', async () => {
    const dump = await plainRequest(sc.admin, { path: '/config_dump' })
    expect(dump.status).toBe(200)
    proxyOutput.push(dump.body)
    const d = JSON.parse(dump.body) as { requestAuthentication: { issuer: string }[]; jwks: { jwksUri: string; kids: string[] | null }[] }
    expect(d.requestAuthentication.map((r) => r.issuer)).toEqual([ISS, BACKUP_ISS, NEVER_ISS, INLINE_ISS])
    expect(d.jwks.find((j) => j.jwksUri === issuer.url)?.kids).toEqual(['rsa-1', 'ec-1', 'rsa-2'])
  })

  test('no token, key or authorization value appears in any log line, access log entry, error, outcome or dump', () => {
    const invalid = outcomes.filter((o) => o.result === 'invalid')
    const haystacks = [
      ...sc.logger.lines.map((l) => JSON.stringify(l)),
      ...sc.accessLog.map((e) => JSON.stringify(e)),
      ...invalid.map((o) => JSON.stringify(o)),
      ...proxyOutput,
    ]
    expect(haystacks.length).toBeGreaterThan(jwtCases.length)
    expect(secrets.size).toBeGreaterThan(40)
    const leaks: string[] = []
    for (const s of secrets) {
      // the token, and its signature alone (unique to it)
      const needles = [s, ...(s.split('.').length === 3 && s.split('.')[2]!.length > 20 ? [s.split('.')[2]!] : [])]
      for (const n of needles) for (const h of haystacks) if (h.includes(n)) leaks.push(`${n.slice(0, 16)}… in ${h.slice(0, 80)}`)
    }
    for (const h of haystacks) if (/bearer\s+ey/i.test(h)) leaks.push(`an authorization value in ${h.slice(0, 80)}`)
    expect(leaks).toEqual([])
  })
})
