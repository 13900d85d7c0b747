// Attacker-style tests (issue 13): requests built to slip past a DENY rule or to make the app see
// something other than what authorization decided on. Run on both engines (projects `unit` and
// `engine-node-http`), inbound (mTLS and plaintext) and outbound. Each deny has its allow twin; each
// asserts the status, the response flag (header and access log) and whether the app was reached.
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PathNormalization } from '../../proxy/policy/index.js'
import type { AccessLogEntry } from '../../proxy/stages/index.js'
import { createTestPki, type Leaf, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, rawExchange, startSidecar, until, type Reply, type RequestOptions, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

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
    const payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address, policies: POLICIES, extra: { pathNormalization: mode } })
    const orders = await startSidecar({
      pki,
      serviceAccount: 'orders',
      app: '127.0.0.1:1',
      extra: { pathNormalization: mode },
      clusters: [{ name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/payments'] }],
    })
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
