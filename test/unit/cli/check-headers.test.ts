// `remora check --header` given more than once: the CLI builds facts.request.headers as the sidecar
// builds them from the same header lines, so a repeated header is matched identically. Checked two
// ways: the DENY on `request.headers[x-user] in [mallory]` must fire for either copy (Istio's
// semantics), and for every row the CLI's answer equals what a running sidecar (both engines)
// answers to the same header lines, with the app reached exactly when the CLI says allow.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { main } from '../../../cli/main.js'
import { createTestPki } from '../../helpers/pki.js'
import { rawExchange, startSidecar, type TestSidecar } from '../../helpers/mesh.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-mallory, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: DENY
  rules:
    - when: [{ key: "request.headers[x-user]", values: [mallory] }]
    - when: [{ key: "request.headers[user-agent]", values: [evil] }]
    - when: [{ key: "request.headers[host]", values: [blocked.shop] }]
    - when: [{ key: "request.headers[x-remora-user]", values: [mallory] }]
    - when: [{ key: "request.headers[x-envoy-user]", values: [mallory] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules: [{}]
`

let dir: string
let policyFile: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-check-headers-'))
  policyFile = join(dir, 'p.yaml')
  await writeFile(policyFile, POLICIES)
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function check(headers: readonly string[], more: string[] = [], labels = 'app=orders'): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  const e = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
  try {
    const args = ['check', '-f', policyFile, '--dest-namespace', 'shop', '--dest-labels', labels, '--method', 'GET', '--path', '/orders', ...headers.flatMap((h) => ['--header', h]), ...more]
    return { code: await main(args), out: out.join('\n'), err: err.join('\n') }
  } finally {
    log.mockRestore()
    e.mockRestore()
  }
}

describe('a DENY on request.headers[x-user] in [mallory]', () => {
  test('x-user: mallory is denied (exit 3), x-user: alice allowed (exit 0)', async () => {
    expect((await check(['x-user: mallory'])).code).toBe(3)
    expect((await check(['x-user: alice'])).code).toBe(0)
  })

  // Istio matches a repeated header as its values joined with commas (^v$|^v,.*|.*,v,.*|.*,v$): either
  // copy triggers the DENY. Needs evaluate()'s comma-element matching (proxy/policy).
  test('--header x-user:alice --header x-user:mallory is denied', async () => {
    const r = await check(['x-user:alice', 'x-user:mallory'], ['-o', 'json'])
    expect(JSON.parse(r.out)).toMatchObject({ decision: 'DENY', status: 403, policy: 'shop/deny-mallory' })
    expect(r.code).toBe(3)
  })

  test('--header x-user:mallory --header x-user:alice is denied', async () => {
    const r = await check(['x-user:mallory', 'x-user:alice'], ['-o', 'json'])
    expect(JSON.parse(r.out)).toMatchObject({ decision: 'DENY', status: 403, policy: 'shop/deny-mallory' })
    expect(r.code).toBe(3)
  })

  test('the allow twin: two copies without mallory are allowed', async () => {
    expect((await check(['x-user: alice', 'x-user: bob'])).code).toBe(0)
  })
})

test('-o json shows the repeated header as the sidecar builds it: one value per name, names in lower case', async () => {
  const r = await check(['X-User: alice', 'x-user: mallory', 'x-other: 1'], ['-o', 'json'])
  const headers = (JSON.parse(r.out) as { request: { request: { headers: Record<string, unknown> } } }).request.request.headers
  // sanitize adds what the app receives from the sidecar (x-forwarded-proto, x-request-id).
  expect(Object.keys(headers).filter((k) => k.startsWith('x-user') || k.startsWith('x-other') || k === 'host').sort()).toEqual(['host', 'x-other', 'x-user'])
  expect(Object.keys(headers).every((k) => k === k.toLowerCase())).toBe(true)
  expect(headers.host).toBe('orders.shop')
  expect(headers['x-forwarded-proto']).toBe('http')
  expect(typeof headers['x-user']).toBe('string')
  expect(headers['x-user']).toMatch(/^alice, ?mallory$/)
})

test('credentials passed as headers are not echoed by -o json', async () => {
  const r = await check(['authorization: Bearer s3cr3t-token', 'cookie: session=s3cr3t-cookie'], ['-o', 'json'])
  expect(r.out).not.toContain('s3cr3t')
  expect((JSON.parse(r.out) as { request: { request: { headers: Record<string, unknown> } } }).request.request.headers.authorization).toBe('[redacted]')
})

test('bad input exits 2: a header name that is not a token, a value with CR/LF, a flag that does not repeat given twice, a label given twice', async () => {
  expect((await check(['x user: a'])).code).toBe(2)
  expect((await check(['x-user: a\r\nx-admin: 1'])).code).toBe(2)
  expect((await check(['host: evil.shop'])).code).toBe(2) // the authority is --host: a request has one Host
  for (const twice of [
    ['--method', 'POST'],
    ['--path', '/admin'],
    ['--dest-namespace', 'web'],
    ['--source-principal', 'cluster.local/ns/shop/sa/a', '--source-principal', 'cluster.local/ns/shop/sa/b'],
  ]) {
    const r = await check([], twice)
    expect(r.code, twice.join(' ')).toBe(2)
    expect(r.err).toMatch(/--[a-z-]+ is given twice/)
  }
  const labels = await check([], [], 'app=orders,app=payments')
  expect(labels.code).toBe(2)
  expect(labels.err).toContain('--dest-labels: app is given twice')
})

// Rows of header lines (and the Host): the CLI's decision must be the sidecar's, whatever evaluate() decides.
const ROWS: { lines: string[]; host?: string }[] = [
  { lines: ['x-user: mallory'] },
  { lines: ['x-user: alice'] },
  { lines: ['x-user: alice', 'x-user: mallory'] },
  { lines: ['x-user: mallory', 'x-user: alice'] },
  { lines: ['X-User: alice', 'x-user: mallory'] },
  { lines: ['x-user: alice, mallory'] },
  { lines: ['x-user: alice', 'x-user: bob'] },
  { lines: ['user-agent: good', 'user-agent: evil'] }, // node:http keeps the first user-agent in req.headers
  { lines: ['user-agent: evil', 'user-agent: good'] },
  { lines: [], host: 'blocked.shop' }, // Host is one of the headers policies see
  { lines: [], host: 'Blocked.Shop' },
  { lines: ['x-user: alice'], host: 'other.shop' },
  // Headers the sidecar owns: what authorization sees of a caller's copy must be the same in both.
  { lines: ['x-remora-user: mallory'] },
  { lines: ['x-envoy-user: mallory'] },
  { lines: ['connection: x-user', 'x-user: mallory'] },
]

for (const engine of ['raw', 'node-http'] as const) {
  describe(`the CLI answers what a running sidecar answers (${engine} engine)`, () => {
    let app: Upstream
    let sc: TestSidecar

    beforeAll(async () => {
      const pki = await createTestPki()
      app = await startUpstream((_req, res) => res.end('ok'))
      sc = await startSidecar({ engine, pki, serviceAccount: 'orders', app: app.address, policies: POLICIES })
    })

    afterAll(async () => {
      await sc?.close()
      await app?.close()
    })

    for (const row of ROWS) {
      test([`host: ${row.host ?? 'orders.shop'}`, ...row.lines].join(' | '), async () => {
        const before = app.hits
        const reply = await rawExchange(sc.inbound, `GET /orders HTTP/1.1\r\nhost: ${row.host ?? 'orders.shop'}\r\n${row.lines.map((h) => `${h}\r\n`).join('')}connection: close\r\n\r\n`)
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1])
        const cli = await check(row.lines, ['-o', 'json', ...(row.host ? ['--host', row.host] : [])])
        expect([200, 403]).toContain(status)
        expect((JSON.parse(cli.out) as { status: number }).status).toBe(status)
        expect(cli.code).toBe(status === 200 ? 0 : 3)
        expect(app.hits - before).toBe(status === 200 ? 1 : 0)
      })
    }
  })
}
