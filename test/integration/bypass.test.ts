// Attacker-style tests (issue 13): requests built to slip past a DENY rule or to make the app see
// something other than what authorization decided on. Run on both engines (projects `unit` and
// `engine-node-http`), inbound (mTLS and plaintext) and outbound. Each deny has its allow twin; each
// asserts the status, the response flag (header and access log) and whether the app was reached.
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PathNormalization } from '../../proxy/policy/index.js'
import type { AccessLogEntry } from '../../proxy/stages/index.js'
import { createTestPki, type Leaf, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, rawExchange, startPair, until, type Reply, type RequestOptions, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestKey, jwks, signJws, type TestKey } from '../helpers/jwt.js'

const MODES: readonly PathNormalization[] = ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']

// The policy of the outside test: a DENY on /admin and /admin/*, plus an allow-all.
const POLICIES = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules:
  - to: [{ operation: { paths: ["/admin", "/admin/*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: shop }
spec:
  action: ALLOW
  rules: [{}]
`

interface Pair {
  /** The callee: its inbound listener guards the app. */
  payments: TestSidecar
  /** The caller: its outbound listener routes host `payments` to payments' inbound. */
  orders: TestSidecar
}

let pki: TestPki
let app: Upstream
let caller: Leaf
const pairs = new Map<PathNormalization, Pair>()

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  caller = await pki.issue('spiffe://cluster.local/ns/shop/sa/orders')
  for (const mode of MODES) {
    const { payments, orders } = await startPair({ pki, app: app.address, policies: POLICIES, extra: { pathNormalization: mode } })
    pairs.set(mode, { payments, orders })
  }
})

afterAll(async () => {
  for (const p of pairs.values()) {
    await p.orders.close()
    await p.payments.close()
  }
  await app?.close()
})

type Via = 'inbound mTLS' | 'inbound plaintext' | 'outbound'
const VIAS: readonly Via[] = ['inbound mTLS', 'inbound plaintext', 'outbound']

/** The sidecar whose listener `via` reaches first (its access log says what it decided). */
function front(p: Pair, via: Via): TestSidecar {
  return via === 'outbound' ? p.orders : p.payments
}

async function send(p: Pair, via: Via, o: RequestOptions): Promise<Reply> {
  if (via === 'outbound') return plainRequest(p.orders.outbound, { ...o, headers: { host: 'payments', ...o.headers } })
  if (via === 'inbound plaintext') return plainRequest(p.payments.inbound, { ...o, headers: { host: 'payments', ...o.headers } })
  const r = await mtlsRequest(p.payments.inbound, caller, pki.caPem, { ...o, headers: { host: 'payments', ...o.headers } })
  if (r.refused) throw new Error(`mTLS request refused: ${r.error}`)
  return r
}

/** Raw bytes to the listener `via` reaches (TLS with the caller's certificate for inbound mTLS). */
function sendRaw(p: Pair, via: Via, bytes: string): Promise<string> {
  if (via === 'outbound') return rawExchange(p.orders.outbound, bytes, { waitMs: 2000 })
  if (via === 'inbound plaintext') return rawExchange(p.payments.inbound, bytes, { waitMs: 2000 })
  return rawExchange(p.payments.inbound, bytes, { waitMs: 2000, tls: { ca: pki.caPem, cert: caller.certPem, key: caller.keyPem, checkServerIdentity: () => undefined } })
}

/** Runs `fn` and returns the access log line it produced at `sc` (waits for it: lines are written after the response). */
async function logged(sc: TestSidecar, fn: () => Promise<unknown>): Promise<AccessLogEntry> {
  const before = sc.accessLog.length
  await fn()
  await until(() => sc.accessLog.length > before, 5000, 'an access log line')
  return sc.accessLog[before]!
}

const statusLine = (raw: string): string => raw.split('\r\n')[0] ?? ''

/** Headers with repeated lines (node:http sends one line per array element, for any name). */
const lines = (h: Record<string, string | string[]>): http.OutgoingHttpHeaders => h

// ---------------------------------------------------------------------------------------------
// Finding 1: control characters in the path

const CTL_HEX: string[] = []
for (let b = 0; b <= 0x1f; b++) CTL_HEX.push(b.toString(16).padStart(2, '0'))
CTL_HEX.push('7f')

const CTL_ATTACKS = ['/admin%00.png', '/admin%0d%0aSet-Cookie:%20x=1', '/admin%0D%0ASet-Cookie:%20x=1', '/admin%7f', '/admin%1F/x', '/admin/%09', '/admin%C0%80.png', '/public/%c0%ae%c0%ae/admin']

for (const mode of MODES) {
  describe(`path control characters under ${mode}: 400 DPE before authorization, the app never reached`, () => {
    for (const via of VIAS) {
      for (const path of CTL_ATTACKS) {
        test(`${via}: ${path} → 400 DPE`, async () => {
          const p = pairs.get(mode)!
          const hits = app.hits
          let res: Reply | null = null
          const line = await logged(front(p, via), async () => (res = await send(p, via, { path })))
          expect(res!.status).toBe(400)
          expect(res!.headers['x-remora-response-flags']).toBe('DPE')
          expect(res!.headers['x-remora-error-code']).toBe('REMORA_ERR_BAD_PATH')
          expect(line.response_flags).toBe('DPE')
          expect(line.error_code).toBe('REMORA_ERR_BAD_PATH')
          expect(line.authz_decision).toBeNull() // refused before authorization looked at it
          expect(app.hits).toBe(hits)
        })
      }
      test(`${via}: the allow twin /admin.png reaches the app, and /admin itself is denied by the policy (AZ)`, async () => {
        const p = pairs.get(mode)!
        const hits = app.hits
        const ok = await send(p, via, { path: '/admin.png' })
        expect(ok.status).toBe(200)
        expect(app.hits).toBe(hits + 1)
        expect(app.requests.at(-1)!.url).toBe('/admin.png')
        const denied = await send(p, via, { path: '/admin' })
        expect(denied.status).toBe(403)
        expect(denied.headers['x-remora-response-flags']).toBe('AZ')
        expect(app.hits).toBe(hits + 1)
      })
    }

    test('inbound mTLS: every %00-%1F and %7F escape, lower and upper case, → 400 DPE; none reaches the app', async () => {
      const p = pairs.get(mode)!
      const hits = app.hits
      for (const hex of CTL_HEX) {
        for (const h of new Set([hex, hex.toUpperCase()])) {
          const res = await send(p, 'inbound mTLS', { path: `/admin%${h}` })
          expect(res.status, `%${h}`).toBe(400)
          expect(res.headers['x-remora-response-flags']).toBe('DPE')
        }
      }
      expect(app.hits).toBe(hits)
    })

    for (const via of VIAS) {
      test(`${via}: every raw control byte and DEL in the path or the query → 400 DPE from the parser; none reaches the app`, async () => {
        const p = pairs.get(mode)!
        const hits = app.hits
        const bytes = [...Array(0x20).keys(), 0x7f]
        for (const b of bytes) {
          const c = String.fromCharCode(b)
          for (const target of [`/admin${c}.png`, `/public?x=${c}`]) {
            const out = await sendRaw(p, via, `GET ${target} HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n`)
            expect(statusLine(out), `byte 0x${b.toString(16)} in ${JSON.stringify(target)}`).toBe('HTTP/1.1 400 Bad Request')
            expect(out).toMatch(/x-remora-response-flags: DPE/i)
          }
        }
        expect(app.hits).toBe(hits)
      })
    }

    for (const via of VIAS) {
      test(`${via}: double encoding is not decoded twice: /admin%2500.png reaches the app as exactly /admin%2500.png`, async () => {
        const p = pairs.get(mode)!
        const hits = app.hits
        const res = await send(p, via, { path: '/admin%2500.png' })
        expect(res.status).toBe(200)
        expect(app.hits).toBe(hits + 1)
        expect(app.requests.at(-1)!.url).toBe('/admin%2500.png')
      })

      test(`${via}: an escaped control character in the query passes as received (Envoy's behaviour) and the path still decides`, async () => {
        const p = pairs.get(mode)!
        const hits = app.hits
        const ok = await send(p, via, { path: '/public?x=%00%0d%0a' })
        expect(ok.status).toBe(200)
        expect(app.requests.at(-1)!.url).toBe('/public?x=%00%0d%0a')
        const denied = await send(p, via, { path: '/admin?x=%00' })
        expect(denied.status).toBe(403)
        expect(denied.headers['x-remora-response-flags']).toBe('AZ')
        expect(app.hits).toBe(hits + 1)
      })

      test(`${via}: %3F and %23 stay in the path: the app receives the path authorization matched`, async () => {
        const p = pairs.get(mode)!
        for (const path of ['/admin%3F', '/admin%23', '/admin%3fx=1']) {
          const line = await logged(p.payments, () => send(p, via, { path }))
          expect(line.response_code).toBe(200)
          expect(app.requests.at(-1)!.url).toBe(line.path)
        }
      })
    }
  })
}

describe('the app receives the normalized path, never the raw one (both engines)', () => {
  const cases: [PathNormalization, string, string][] = [
    ['MERGE_SLASHES', '/public/./x/../%61dmin2//y', '/public/admin2/y'],
    ['BASE', '/public/./x/../%61dmin2//y', '/public/admin2//y'],
    ['DECODE_AND_MERGE_SLASHES', '/public%2Fx%2F..%2Fy', '/public/y'],
    ['MERGE_SLASHES', '/public\\x', '/public/x'],
  ]
  for (const [mode, sent, seen] of cases) {
    for (const via of VIAS) {
      test(`${mode}, ${via}: ${sent} → the app sees ${seen}, the path authorization matched`, async () => {
        const p = pairs.get(mode)!
        const line = await logged(p.payments, () => sendRaw(p, via, `GET ${sent} HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n`))
        expect(line.response_code).toBe(200)
        expect(line.path).toBe(seen)
        expect(app.requests.at(-1)!.url).toBe(seen)
      })
    }
  }

  test('a dot-segment walk into /admin is denied on the normalized path', async () => {
    const p = pairs.get('MERGE_SLASHES')!
    const hits = app.hits
    const out = await sendRaw(p, 'outbound', 'GET /public/../admin HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n')
    expect(statusLine(out)).toBe(`HTTP/1.1 403 ${http.STATUS_CODES[403]}`)
    expect(out).toMatch(/x-remora-response-flags: AZ/i)
    expect(app.hits).toBe(hits)
  })
})

// ---------------------------------------------------------------------------------------------
// Findings 2 and 5: headers the sidecar owns, and facts that occur more than once. One pair with a
// RequestAuthentication and the policies below; its app echoes what it received, and /spoof
// answers with headers that imitate a sidecar's denial.

const ISS = 'https://issuer.bypass.test'
const ISS2 = 'https://second.bypass.test'

function usersPolicies(k1: TestKey, k2: TestKey): string {
  return `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  jwtRules:
    - issuer: ${ISS}
      jwks: '${JSON.stringify(jwks(k1))}'
      outputPayloadToHeader: x-jwt-payload
      outputClaimToHeaders: [{ header: x-group, claim: group }]
    - issuer: ${ISS2}
      jwks: '${JSON.stringify(jwks(k2))}'
      fromHeaders: [{ name: x-token }]
      fromParams: [tok]
      fromCookies: [session]
      forwardOriginalToken: true
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-users, namespace: shop }
spec:
  action: DENY
  rules:
    - when: [{ key: "request.headers[x-user]", values: [mallory] }]
    - when: [{ key: "request.headers[x-team]", values: ["red*"] }]
    - when: [{ key: "request.headers[x-tag]", values: ["*-evil"] }]
    - when: [{ key: "request.headers[user-agent]", values: [evilbot] }]
    - when: [{ key: "request.auth.claims[scope]", values: [admin] }]
    - when: [{ key: "request.auth.claims[permission]", values: [delete] }]
    - from: [{ source: { remoteIpBlocks: ["127.0.0.1/32"] } }]
      to: [{ operation: { paths: ["/no-loopback"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-users, namespace: shop }
spec:
  action: ALLOW
  rules:
    - to: [{ operation: { paths: ["/public*", "/no-loopback", "/spoof*"] } }]
    - to: [{ operation: { paths: ["/internal"] } }]
      when: [{ key: "request.headers[x-envoy-internal]", values: ["true"] }]
    - to: [{ operation: { paths: ["/remora"] } }]
      when: [{ key: "request.headers[x-remora-trusted]", values: ["*"] }]
    - to: [{ operation: { paths: ["/group"] } }]
      when: [{ key: "request.headers[x-group]", values: [admin] }]
    - to: [{ operation: { paths: ["/json"] } }]
      when: [{ key: "request.headers[content-type]", values: [application/json] }]
    - to: [{ operation: { paths: ["/scoped"] } }]
      when: [{ key: "request.auth.claims[scope]", values: [read] }]
    - from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }]
      to: [{ operation: { paths: ["/from-ten"] } }]
`
}

const SPOOF = {
  'x-remora-response-flags': 'AZ',
  'x-remora-error-code': 'REMORA_ERR_AUTHZ_DENIED',
  'x-remora-denied-by': 'deny: spoofed by the app',
  'x-remora-trace': 'http://evil.example/trace/1',
  'x-envoy-upstream-service-time': '1',
  'x-envoy-overloaded': 'true',
}

let k1: TestKey
let k2: TestKey
let usersApp: Upstream
let users: Pair

const token = (k: TestKey, iss: string, claims: Record<string, unknown> = {}): string =>
  signJws({ alg: 'EdDSA', kid: k.kid, typ: 'JWT' }, { iss, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600, ...claims }, { key: k })

beforeAll(async () => {
  k1 = createTestKey('k1', 'EdDSA', 'k1')
  k2 = createTestKey('k2', 'EdDSA', 'k2')
  usersApp = await startUpstream((req, res) => {
    if ((req.url ?? '').startsWith('/spoof')) {
      res.writeHead(req.url === '/spoof/500' ? 500 : 200, { 'content-type': 'text/plain', ...SPOOF })
      res.end('app')
      return
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ url: req.url, headers: req.headers }))
  })
  users = await startPair({ pki, app: usersApp.address, policies: usersPolicies(k1, k2) })
})

afterAll(async () => {
  await users?.orders.close()
  await users?.payments.close()
  await usersApp?.close()
})

/** One request through `via`; the reply, the access log line of the sidecar that decided, and what the app got (or null). */
async function attempt(via: Via, o: RequestOptions): Promise<{ res: Reply; line: AccessLogEntry; seen: (typeof usersApp.requests)[number] | null }> {
  const hits = usersApp.hits
  let res: Reply | null = null
  const line = await logged(users.payments, async () => (res = await send(users, via, o)))
  return { res: res!, line, seen: usersApp.hits > hits ? usersApp.requests.at(-1)! : null }
}

function expectDenied(r: Awaited<ReturnType<typeof attempt>>, status: 403 | 401 = 403): void {
  expect(r.res.status).toBe(status)
  const flag = status === 403 ? 'AZ' : 'JW'
  expect(r.res.headers['x-remora-response-flags']).toBe(flag)
  expect(r.line.response_flags).toBe(flag)
  expect(r.seen).toBeNull()
}

function expectAllowed(r: Awaited<ReturnType<typeof attempt>>): void {
  expect(r.res.status).toBe(200)
  expect(r.line.response_flags).toBe('-')
  expect(r.seen).not.toBeNull()
}

const INTERNAL_SENT = {
  'x-remora-denied-by': 'forged',
  'X-Remora-Response-Flags': 'AZ',
  'x-remora-trusted': 'yes',
  'x-remora-anything': 'x',
  'x-envoy-internal': 'true',
  'X-Envoy-Original-Path': '/admin',
  'x-envoy-force-trace': 'true',
  'x-envoy-external-address': '10.1.2.3',
}

describe('finding 2: headers the sidecar owns', () => {
  for (const via of VIAS) {
    test(`${via}: every x-remora-* and x-envoy-* header a caller sends is stripped before the app`, async () => {
      const r = await attempt(via, { path: '/public', headers: { ...INTERNAL_SENT, 'x-other': 'kept' } })
      expectAllowed(r)
      const names = r.seen!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
      expect(names.filter((n) => n.startsWith('x-remora-') || n.startsWith('x-envoy-'))).toEqual([])
      expect(r.seen!.headers['x-other']).toBe('kept') // the allow twin: an ordinary header passes
    })

    test(`${via}: a forged x-envoy-internal or x-remora-* header never satisfies a policy (403 AZ); the twin path is allowed`, async () => {
      expectDenied(await attempt(via, { path: '/internal', headers: { 'x-envoy-internal': 'true' } }))
      expectDenied(await attempt(via, { path: '/remora', headers: { 'x-remora-trusted': 'yes' } }))
      expectAllowed(await attempt(via, { path: '/public/internal', headers: { 'x-envoy-internal': 'true' } }))
    })

    test(`${via}: the headers the sidecar sets for the app are set after stripping (x-forwarded-proto, x-request-id, XFCC)`, async () => {
      const r = await attempt(via, { path: '/public', headers: { 'x-forwarded-client-cert': 'By=spiffe://evil;URI=spiffe://cluster.local/ns/shop/sa/admin', 'x-forwarded-proto': 'https' } })
      expectAllowed(r)
      const h = r.seen!.headers
      expect(h['x-request-id']).toBeTruthy()
      if (via === 'inbound plaintext') {
        expect(h['x-forwarded-client-cert']).toBeUndefined()
        expect(h['x-forwarded-proto']).toBe('http')
      } else {
        // a verified peer: XFCC names it (the outbound sidecar, or the mTLS caller), never the forged one
        expect(h['x-forwarded-client-cert']).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments;Hash=[0-9a-f]+;URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders$/)
      }
    })

    test(`${via}: a forged JWT output header (x-group, x-jwt-payload) without a token never reaches the app nor satisfies a policy`, async () => {
      expectDenied(await attempt(via, { path: '/group', headers: { 'x-group': 'admin', 'x-jwt-payload': 'e30' } }))
      const r = await attempt(via, { path: '/public', headers: { 'x-group': 'admin', 'x-jwt-payload': 'e30' } })
      expectAllowed(r)
      expect(r.seen!.headers['x-group']).toBeUndefined()
      expect(r.seen!.headers['x-jwt-payload']).toBeUndefined()
      // the twin: a verified token sets them, and the policy sees the verified value
      const ok = await attempt(via, { path: '/group', headers: { authorization: `Bearer ${token(k1, ISS, { group: 'admin' })}`, 'x-group': 'forged' } })
      expectAllowed(ok)
      expect(ok.seen!.headers['x-group']).toBe('admin')
    })
  }

  test('inbound mTLS: x-remora-* and x-envoy-* response headers from the app never reach the caller (it cannot imitate a denial)', async () => {
    for (const path of ['/spoof', '/spoof/500']) {
      const r = await attempt('inbound mTLS', { path })
      expect(r.seen).not.toBeNull()
      for (const k of Object.keys(SPOOF)) expect(r.res.headers[k], `${path}: ${k}`).toBeUndefined()
      expect(r.res.headers['content-type']).toBe('text/plain') // the twin: the app's other headers pass
      expect(r.res.body).toBe('app')
    }
  })

  test('outbound: the caller sees the real denial of the peer sidecar (x-remora-denied-by), never the app\'s imitation', async () => {
    const spoof = await attempt('outbound', { path: '/spoof' })
    expect(spoof.res.status).toBe(200)
    for (const k of Object.keys(SPOOF)) expect(spoof.res.headers[k]).toBeUndefined()
    const real = await attempt('outbound', { path: '/internal' })
    expect(real.res.status).toBe(403)
    expect(real.res.headers['x-remora-response-flags']).toBe('AZ')
    expect(real.res.headers['x-remora-denied-by']).toMatch(/no ALLOW policy matched/)
  })
})

describe('finding 5: a fact that occurs more than once', () => {
  for (const via of VIAS) {
    test(`${via}: DENY x-user in [mallory] catches either copy of a repeated header, and one "alice, mallory" line`, async () => {
      expectDenied(await attempt(via, { path: '/public', headers: { 'x-user': ['alice', 'mallory'] } }))
      expectDenied(await attempt(via, { path: '/public', headers: { 'x-user': ['mallory', 'alice'] } }))
      expectDenied(await attempt(via, { path: '/public', headers: { 'x-user': 'alice, mallory' } }))
      expectDenied(await attempt(via, { path: '/public', headers: { 'x-team': ['blue', 'red-2'] } }))
      expectDenied(await attempt(via, { path: '/public', headers: { 'x-tag': 'ok, very-evil' } }))
      const twin = await attempt(via, { path: '/public', headers: { 'x-user': ['alice', 'bob'] } })
      expectAllowed(twin)
      expect(twin.seen!.headers['x-user']).toBe('alice, bob')
    })

    test(`${via}: a field both engines keep only the first of: the policy decides on the copy the app gets`, async () => {
      // DENY user-agent evilbot: a second copy never reaches the app (dropped), the first one is decided on
      expectDenied(await attempt(via, { path: '/public', headers: lines({ 'user-agent': ['evilbot', 'good'] }) }))
      const ua = await attempt(via, { path: '/public', headers: lines({ 'user-agent': ['good', 'evilbot'] }) })
      expectAllowed(ua)
      expect(ua.seen!.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'user-agent')).toEqual(['good'])
      // ALLOW content-type application/json: a JSON copy behind another type cannot unlock it
      expectDenied(await attempt(via, { path: '/json', method: 'POST', body: '{}', headers: lines({ 'content-type': ['text/xml', 'application/json'] }) }))
      const json = await attempt(via, { path: '/json', method: 'POST', body: '{}', headers: lines({ 'content-type': ['application/json', 'text/xml'] }) })
      expectAllowed(json)
      expect(json.seen!.headers['content-type']).toBe('application/json')
    })

    test(`${via}: scope is a space-delimited list (Istio): DENY scope admin catches "read admin"; ALLOW scope read admits "read write"`, async () => {
      expectDenied(await attempt(via, { path: '/public', headers: { authorization: `Bearer ${token(k1, ISS, { scope: 'read admin' })}` } }))
      expectDenied(await attempt(via, { path: '/public', headers: { authorization: `Bearer ${token(k1, ISS, { permission: 'list delete' })}` } }))
      expectAllowed(await attempt(via, { path: '/scoped', headers: { authorization: `Bearer ${token(k1, ISS, { scope: 'read write' })}` } }))
      expectDenied(await attempt(via, { path: '/scoped', headers: { authorization: `Bearer ${token(k1, ISS, { scope: 'write' })}` } }))
    })

    test(`${via}: two Authorization headers → 401 JW whichever copy is valid; the app never sees an unverified token`, async () => {
      const good = `Bearer ${token(k1, ISS)}`
      const forged = `Bearer ${token(k2, ISS)}` // signed by a key the issuer does not have
      if (via === 'outbound') {
        // The outbound sidecar forwards the first copy only (node:http's rule for Authorization, kept
        // by the raw engine): the peer verifies exactly that one, and consumes it.
        const first = await attempt(via, { path: '/public', headers: lines({ authorization: [good, forged] }) })
        expectAllowed(first)
        expect(first.seen!.rawHeaders.filter((_, i, a) => i % 2 === 0 && a[i]!.toLowerCase() === 'authorization')).toEqual([])
        expectDenied(await attempt(via, { path: '/public', headers: lines({ authorization: [forged, good] }) }), 401)
      } else {
        expectDenied(await attempt(via, { path: '/public', headers: lines({ authorization: [good, forged] }) }), 401)
        expectDenied(await attempt(via, { path: '/public', headers: lines({ authorization: [forged, good] }) }), 401)
        expectDenied(await attempt(via, { path: '/public', headers: lines({ authorization: ['Basic dTpw', good] }) }), 401)
      }
      const one = await attempt(via, { path: '/public', headers: { authorization: good } })
      expectAllowed(one)
      expect(one.seen!.headers.authorization).toBeUndefined() // forwardOriginalToken false: the verified token is consumed
    })

    test(`${via}: a repeated fromHeaders header, fromParams parameter or fromCookies cookie → 401 JW; one copy passes`, async () => {
      const t = token(k2, ISS2)
      expectDenied(await attempt(via, { path: '/public', headers: { 'x-token': [t, t] } }), 401)
      expectDenied(await attempt(via, { path: `/public?tok=${t}&tok=${t}` }), 401)
      expectDenied(await attempt(via, { path: `/public?tok=${t}&t%6Fk=x` }), 401)
      expectDenied(await attempt(via, { path: '/public', headers: { cookie: `session=${t}; session=x` } }), 401)
      expectDenied(await attempt(via, { path: '/public', headers: { cookie: [`session=${t}`, 'session=x'] } }), 401)
      const h = await attempt(via, { path: '/public', headers: { 'x-token': t } })
      expectAllowed(h)
      expect(h.seen!.headers['x-token']).toBe(t) // forwardOriginalToken: exactly the verified copy
      const q = await attempt(via, { path: `/public?tok=${t}&a=1` })
      expectAllowed(q)
      expect(q.seen!.url).toBe(`/public?tok=${t}&a=1`)
      const c = await attempt(via, { path: '/public', headers: { cookie: `a=1; session=${t}` } })
      expectAllowed(c)
      expect(c.seen!.headers.cookie).toBe(`a=1; session=${t}`)
    })

    test(`${via}: X-Forwarded-For never chooses the remote IP (no trusted hops): a spoofed one neither escapes a DENY nor unlocks an ALLOW`, async () => {
      expectDenied(await attempt(via, { path: '/no-loopback', headers: { 'x-forwarded-for': '10.1.2.3', 'x-envoy-external-address': '10.1.2.3' } }))
      expectDenied(await attempt(via, { path: '/from-ten', headers: { 'x-forwarded-for': '10.1.2.3, 10.4.5.6' } }))
      expectAllowed(await attempt(via, { path: '/public', headers: { 'x-forwarded-for': '10.1.2.3' } }))
    })
  }
})

describe('finding 5: Host and framing facts that occur more than once (400 DPE, app never reached)', () => {
  const cases: [string, string, number][] = [
    ['two Host headers', 'GET /public HTTP/1.1\r\nHost: payments\r\nHost: payments\r\n\r\n', 400],
    ['two Host headers, one empty', 'GET /public HTTP/1.1\r\nHost: payments\r\nHost:\r\n\r\n', 400],
    ['two different Content-Lengths', 'POST /public HTTP/1.1\r\nHost: payments\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400],
    ['a Content-Length list', 'POST /public HTTP/1.1\r\nHost: payments\r\nContent-Length: 3, 3\r\n\r\nabc', 400],
    ['Transfer-Encoding before Content-Length', 'POST /public HTTP/1.1\r\nHost: payments\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', 400],
    ['Transfer-Encoding chunked twice', 'POST /public HTTP/1.1\r\nHost: payments\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ]
  for (const via of VIAS) {
    for (const [name, raw, status] of cases) {
      test(`${via}: ${name} → ${status}`, async () => {
        const hits = usersApp.hits
        const out = await sendRaw(users, via, raw)
        expect(statusLine(out)).toBe(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`)
        expect(out).toMatch(/x-remora-response-flags: DPE/i)
        expect(usersApp.hits).toBe(hits)
      })
    }

    test(`${via}: absolute-form wins over Host: policy and app both see the absolute-form authority`, async () => {
      const hits = usersApp.hits
      const denied = await sendRaw(users, via, 'GET http://payments/no-loopback HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n')
      expect(statusLine(denied)).toBe('HTTP/1.1 403 Forbidden')
      expect(usersApp.hits).toBe(hits)
      const ok = await sendRaw(users, via, 'GET http://payments/public HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n')
      expect(statusLine(ok)).toBe('HTTP/1.1 200 OK')
      expect(usersApp.requests.at(-1)!.headers.host).toBe('payments')
    })
  }
})
