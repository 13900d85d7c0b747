import net from 'node:net'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startPair, TEST_ENGINE, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { frontLimits, INBOUND_HEADERS_ALLOWANCE, LIMITS_DEFAULTS, LimitsSchema, validateSidecarConfig } from '../../proxy/config/schema.js'
import { DEFAULT_FRONT_LIMITS } from '../../proxy/engines/common/index.js'
import { MAX_PIPELINED } from '../../proxy/engines/node-http/index.js'

// The downstream limits of both fronts (docs/forwarding.md#limits): header count (431), header
// block size (431), request head timeout (408, or a silent close when nothing was sent), keep-alive
// idle timeout (silent close), and pipelined requests answered one at a time, in order. Short
// timeouts are configured so that each timeout is waited for, not assumed.
const HEAD_TIMEOUT_MS = 400
const IDLE_TIMEOUT_MS = 600
/** A timeout fires within a tenth of the shorter timeout (the sweep) plus scheduling slack. */
const LATE_MS = 700
/** node:http keeps an idle keep-alive connection 1 s past keepAliveTimeout (Node's HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER). */
const IDLE_GRACE_MS = TEST_ENGINE === 'node-http' ? 1000 : 0

let pki: TestPki
let app: Upstream
let payments: TestSidecar
let orders: TestSidecar
let peer: tls.ConnectionOptions

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream((req, res) => {
    res.setHeader('x-app-path', req.url ?? '')
    res.end('ok')
  })
  const limits = { requestHeadersTimeout: `${HEAD_TIMEOUT_MS}ms`, idleTimeout: `${IDLE_TIMEOUT_MS}ms`, maxRequestHeadersKb: 16 }
  ;({ payments, orders } = await startPair({ pki, app: app.address, extra: { limits } }))
  const c = await pki.issue('spiffe://cluster.local/ns/shop/sa/orders')
  peer = { ca: pki.caPem, cert: c.certPem, key: c.keyPem, checkServerIdentity: () => undefined }
})

afterAll(async () => {
  await orders?.close()
  await payments?.close()
  await app?.close()
})

type Front = 'outbound' | 'inbound'

interface Conn {
  socket: net.Socket
  /** Everything read so far (latin1). */
  data(): string
  /** Resolves when the server closes the connection: what was read and ms since `since`. */
  closed: Promise<{ out: string; afterMs: number }>
  since: number
}

async function connect(front: Front): Promise<Conn> {
  const socket = front === 'outbound' ? net.connect(orders.outbound, '127.0.0.1') : tls.connect({ host: '127.0.0.1', port: payments.inbound, ...peer })
  await new Promise<void>((resolve, reject) => {
    socket.once(front === 'outbound' ? 'connect' : 'secureConnect', () => resolve())
    socket.once('error', reject)
  })
  let out = ''
  socket.on('data', (c: Buffer) => (out += c.toString('latin1')))
  socket.on('error', () => {})
  const conn: Conn = {
    socket,
    data: () => out,
    since: performance.now(),
    closed: new Promise((resolve) => socket.once('close', () => resolve({ out, afterMs: performance.now() - conn.since }))),
  }
  return conn
}

const host = (front: Front): string => (front === 'outbound' ? 'payments' : 'payments.shop')

/** A head with `count` header lines in all (Host and Connection: close included), each `valueBytes` long. */
function headWith(front: Front, count: number, valueBytes = 8, path = '/limits'): string {
  let h = `GET ${path} HTTP/1.1\r\nHost: ${host(front)}\r\n`
  for (let i = 1; i <= count - 2; i++) h += `x-h-${i}: ${'v'.repeat(valueBytes)}\r\n`
  return h + 'Connection: close\r\n\r\n'
}

const statusLine = (out: string): string => out.split('\r\n')[0] ?? ''
/** maxRequestHeadersCount as each front applies it: the inbound one leaves room for what the caller's sidecar adds. */
const headerLimit = (front: Front): number => LIMITS_DEFAULTS.maxRequestHeadersCount + (front === 'inbound' ? INBOUND_HEADERS_ALLOWANCE : 0)

test('the schema defaults are the fronts\' defaults; unknown and out-of-range fields are rejected', () => {
  expect(frontLimits(LimitsSchema.parse({}))).toEqual(DEFAULT_FRONT_LIMITS)
  expect(frontLimits(LimitsSchema.parse({}), 'inbound').maxRequestHeadersCount).toBe(100 + INBOUND_HEADERS_ALLOWANCE)
  expect(LIMITS_DEFAULTS.maxRequestHeadersCount).toBe(100)
  const base = { apiVersion: 'remora.dev/v1', kind: 'SidecarConfig', workload: { namespace: 'shop', serviceAccount: 'a' }, identity: { certFile: 'a', keyFile: 'b', caFile: 'c' } }
  const bad = validateSidecarConfig({ ...base, limits: { maxHeadersCount: 10 } })
  expect(bad.ok).toBe(false)
  if (!bad.ok) expect(bad.issues).toContainEqual({ path: 'limits.maxHeadersCount', message: 'unknown field' })
  const range = validateSidecarConfig({ ...base, limits: { requestHeadersTimeout: '10ms', maxRequestHeadersCount: 0 } })
  expect(range.ok).toBe(false)
  if (!range.ok) expect(range.issues.map((i) => i.path).sort()).toEqual(['limits.maxRequestHeadersCount', 'limits.requestHeadersTimeout'])
  const good = validateSidecarConfig({ ...base, limits: { requestHeadersTimeout: '2s', maxRequestHeadersCount: 50 } })
  expect(good.ok && frontLimits(good.config.limits)).toMatchObject({ requestHeadersTimeoutMs: 2000, maxRequestHeadersCount: 50, idleTimeoutMs: 60_000 })
})

for (const front of ['outbound', 'inbound'] as const) {
  describe(`${front}${front === 'inbound' ? ' (mTLS)' : ''}`, () => {
    test(`${headerLimit(front) + 1} header lines → 431 REMORA_ERR_TOO_MANY_HEADERS, closed, never reaches the app, logged`, async () => {
      const hits = app.hits
      const side = front === 'outbound' ? orders : payments
      const logged = side.accessLog.length
      const c = await connect(front)
      c.socket.write(headWith(front, headerLimit(front) + 1))
      const { out } = await c.closed
      expect(statusLine(out)).toBe('HTTP/1.1 431 Request Header Fields Too Large')
      expect(out).toContain('x-remora-error-code: REMORA_ERR_TOO_MANY_HEADERS')
      expect(out).toContain('x-remora-response-flags: DPE')
      expect(app.hits).toBe(hits)
      const e = side.accessLog.slice(logged).find((l) => l.error_code === 'REMORA_ERR_TOO_MANY_HEADERS')
      expect(e?.response_code).toBe(431)
    })

    test('a DENY-shaped header as the 150th line cannot be dropped on the way: the whole request is 431', async () => {
      const hits = app.hits
      const c = await connect(front)
      c.socket.write(headWith(front, 149).replace('Connection: close\r\n', 'x-user: mallory\r\nConnection: close\r\n'))
      const { out } = await c.closed
      expect(statusLine(out)).toBe('HTTP/1.1 431 Request Header Fields Too Large')
      expect(app.hits).toBe(hits)
    })

    test(`allow twin: ${headerLimit(front)} header lines pass and all of them reach the app${front === 'outbound' ? ' (through the peer sidecar)' : ''}`, async () => {
      const hits = app.hits
      const c = await connect(front)
      c.socket.write(headWith(front, headerLimit(front)))
      const { out } = await c.closed
      expect(statusLine(out)).toBe('HTTP/1.1 200 OK')
      expect(app.hits).toBe(hits + 1)
      const seen = app.requests.at(-1)!.headers
      expect(seen[`x-h-${headerLimit(front) - 2}`]).toBe('vvvvvvvv')
    })

    test('a head over maxRequestHeadersKb (16 KiB here) → 431 REMORA_ERR_HEADERS_TOO_LARGE; 15 KiB passes', async () => {
      const hits = app.hits
      const big = await connect(front)
      big.socket.write(headWith(front, 3, 17 * 1024))
      const r = await big.closed
      expect(statusLine(r.out)).toBe('HTTP/1.1 431 Request Header Fields Too Large')
      expect(r.out).toContain('x-remora-error-code: REMORA_ERR_HEADERS_TOO_LARGE')
      expect(app.hits).toBe(hits)
      const ok = await connect(front)
      ok.socket.write(headWith(front, 3, 15 * 1024))
      expect(statusLine((await ok.closed).out)).toBe('HTTP/1.1 200 OK')
      expect(app.hits).toBe(hits + 1)
    })

    test(`a head still incomplete after requestHeadersTimeout (${HEAD_TIMEOUT_MS} ms) → 408 REMORA_ERR_REQUEST_TIMEOUT, closed`, async () => {
      const hits = app.hits
      const side = front === 'outbound' ? orders : payments
      const logged = side.accessLog.length
      const c = await connect(front)
      c.since = performance.now()
      c.socket.write(`GET /slow HTTP/1.1\r\nHost: ${host(front)}\r\nx-a: 1\r\n`)
      const { out, afterMs } = await c.closed
      expect(statusLine(out)).toBe('HTTP/1.1 408 Request Timeout')
      expect(out).toContain('x-remora-error-code: REMORA_ERR_REQUEST_TIMEOUT')
      expect(afterMs).toBeGreaterThanOrEqual(HEAD_TIMEOUT_MS - 20)
      expect(afterMs).toBeLessThan(HEAD_TIMEOUT_MS + LATE_MS)
      expect(app.hits).toBe(hits)
      expect(side.accessLog.slice(logged).find((l) => l.error_code === 'REMORA_ERR_REQUEST_TIMEOUT')?.response_code).toBe(408)
    })

    test('a head trickled a byte every 50 ms still gets 408 at the timeout (trickling does not extend it)', async () => {
      const c = await connect(front)
      const head = `GET /trickle HTTP/1.1\r\nHost: ${host(front)}\r\nx-long: ${'a'.repeat(200)}\r\n\r\n`
      let i = 0
      c.since = performance.now()
      const t = setInterval(() => {
        if (c.socket.writable && i < head.length) c.socket.write(head[i++]!)
      }, 50)
      const { out, afterMs } = await c.closed
      clearInterval(t)
      expect(statusLine(out)).toBe('HTTP/1.1 408 Request Timeout')
      expect(i).toBeLessThan(head.length)
      expect(afterMs).toBeLessThan(HEAD_TIMEOUT_MS + LATE_MS)
    })

    test('allow twin: a head sent in two parts 150 ms apart (within the timeout) is answered', async () => {
      const hits = app.hits
      const c = await connect(front)
      c.socket.write(`GET /two-parts HTTP/1.1\r\nHost: ${host(front)}\r\n`)
      await new Promise((r) => setTimeout(r, 150))
      c.socket.write('Connection: close\r\n\r\n')
      const { out } = await c.closed
      expect(statusLine(out)).toBe('HTTP/1.1 200 OK')
      expect(app.hits).toBe(hits + 1)
    })

    test('a new connection that sends nothing is closed without an answer after the head timeout', async () => {
      const c = await connect(front)
      const { out, afterMs } = await c.closed
      expect(out).toBe('')
      expect(afterMs).toBeGreaterThanOrEqual(HEAD_TIMEOUT_MS - 20)
      expect(afterMs).toBeLessThan(HEAD_TIMEOUT_MS + LATE_MS)
    })

    test(`a keep-alive connection idle after its answer is closed without a word after idleTimeout (${IDLE_TIMEOUT_MS} ms); a next head started gets 408`, async () => {
      const idle = await connect(front)
      idle.socket.write(`GET /ka HTTP/1.1\r\nHost: ${host(front)}\r\n\r\n`)
      await new Promise<void>((r) => {
        const check = (): void => (idle.data().endsWith('ok') ? r() : void setTimeout(check, 5))
        check()
      })
      idle.since = performance.now()
      const r = await idle.closed
      expect(statusLine(r.out)).toBe('HTTP/1.1 200 OK')
      expect(r.out.endsWith('ok')).toBe(true) // nothing after the answer: a silent close
      expect(r.afterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 20)
      expect(r.afterMs).toBeLessThan(IDLE_TIMEOUT_MS + IDLE_GRACE_MS + LATE_MS)

      const next = await connect(front)
      next.socket.write(`GET /ka HTTP/1.1\r\nHost: ${host(front)}\r\n\r\n`)
      await new Promise<void>((r) => {
        const check = (): void => (next.data().endsWith('ok') ? r() : void setTimeout(check, 5))
        check()
      })
      next.since = performance.now()
      next.socket.write(`GET /ka2 HTTP/1.1\r\nHost: ${host(front)}\r\n`)
      const n = await next.closed
      expect(n.out.slice(n.out.indexOf('ok') + 2).split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
      expect(n.afterMs).toBeLessThan(HEAD_TIMEOUT_MS + LATE_MS)
    })

    test(`${MAX_PIPELINED} pipelined requests in one write are answered in order`, async () => {
      const c = await connect(front)
      let batch = ''
      for (let i = 0; i < MAX_PIPELINED; i++) batch += `GET /p/${i} HTTP/1.1\r\nHost: ${host(front)}\r\n${i === MAX_PIPELINED - 1 ? 'Connection: close\r\n' : ''}\r\n`
      c.socket.write(batch)
      const { out } = await c.closed
      const paths = [...out.matchAll(/x-app-path: (\S+)/g)].map((m) => m[1])
      expect(paths).toEqual(Array.from({ length: MAX_PIPELINED }, (_, i) => `/p/${i}`))
    })
  })
}
