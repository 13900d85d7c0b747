import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// client ──plain──▶ orders sidecar :outbound ──mTLS──▶ payments sidecar :inbound ──▶ payments app
let pki: TestPki
let app: Upstream
let payments: TestSidecar
let orders: TestSidecar

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address })
  orders = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: '127.0.0.1:1',
    clusters: [
      {
        name: 'payments.shop',
        hosts: ['payments', 'payments.shop', 'payments.shop.svc.cluster.local'],
        endpoints: [`127.0.0.1:${payments.inbound}`],
        identities: ['spiffe://cluster.local/ns/shop/sa/payments'],
      },
    ],
  })
})

afterAll(async () => {
  await orders?.close()
  await payments?.close()
  await app?.close()
})

describe('outbound → mTLS → inbound', () => {
  test('a call reaches the app with the caller SPIFFE ID in XFCC', async () => {
    const res = await plainRequest(orders.outbound, { path: '/charge?id=1', headers: { host: 'payments.shop' } })
    expect(res.status).toBe(200)
    const seen = JSON.parse(res.body) as { url: string; headers: Record<string, string> }
    expect(seen.url).toBe('/charge?id=1')
    expect(seen.headers['x-forwarded-client-cert']).toMatch(
      /^By=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders$/,
    )
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    const inLine = payments.accessLog.at(-1)!
    expect(inLine.downstream_peer_principal).toBe('spiffe://cluster.local/ns/shop/sa/orders')
    expect(inLine.connection_security_policy).toBe('mutual_tls')
    expect(inLine.path).toBe('/charge')
  })

  test('host with port, and an explicit-proxy absolute-form request, route the same', async () => {
    const a = await plainRequest(orders.outbound, { path: '/x', headers: { host: 'payments.shop:8080' } })
    expect(a.status).toBe(200)
    const b = await plainRequest(orders.outbound, { path: 'http://payments.shop.svc.cluster.local/abs?q=1', headers: { host: 'ignored.example' } })
    expect(b.status).toBe(200)
    const seen = JSON.parse(b.body) as { url: string; headers: Record<string, string> }
    expect(seen.url).toBe('/abs?q=1')
    expect(seen.headers.host).toBe('payments.shop.svc.cluster.local')
  })

  test('unknown host outbound → 404 NR with its access-log line', async () => {
    const hits = app.hits
    const res = await plainRequest(orders.outbound, { path: '/', headers: { host: 'nowhere.shop' } })
    expect(res.status).toBe(404)
    expect(res.headers['x-remora-response-flags']).toBe('NR')
    expect(app.hits).toBe(hits)
    const line = orders.accessLog.at(-1)!
    expect(line.response_code).toBe(404)
    expect(line.response_flags).toBe('NR')
    expect(line.error_code).toBe('REMORA_ERR_ROUTE_NOT_FOUND')
  })

  test('a spoofed XFCC from the caller never reaches the app', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'payments', 'x-forwarded-client-cert': 'By=evil;URI=spiffe://cluster.local/ns/shop/sa/admin' } })
    const seen = JSON.parse(res.body) as { headers: Record<string, string> }
    expect(seen.headers['x-forwarded-client-cert']).not.toContain('admin')
    expect(seen.headers['x-forwarded-client-cert']).toContain('URI=spiffe://cluster.local/ns/shop/sa/orders')
    // directly at the inbound listener, with a valid mesh cert, the spoof is replaced too
    const direct = await mtlsRequest(payments.inbound, orders.leaf, pki.caPem, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/admin' } })
    expect(direct.refused).toBe(false)
    if (!direct.refused) expect(JSON.parse(direct.body).headers['x-forwarded-client-cert']).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders$/)
  })

  test('Connection: x-forwarded-client-cert cannot strip the sidecar XFCC', async () => {
    const direct = await mtlsRequest(payments.inbound, orders.leaf, pki.caPem, { headers: { connection: 'x-forwarded-client-cert, x-request-id' } })
    expect(direct.refused).toBe(false)
    if (!direct.refused) {
      const h = JSON.parse(direct.body).headers as Record<string, string>
      expect(h['x-forwarded-client-cert']).toContain('URI=spiffe://cluster.local/ns/shop/sa/orders')
      // No engine must forward it; the raw engine sends no Connection header at all (keep-alive is HTTP/1.1's default).
      expect(h.connection ?? '').not.toContain('x-forwarded-client-cert')
    }
  })

  test('hop-by-hop headers and those named in Connection are removed', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'payments', connection: 'keep-alive, x-secret-hop', 'x-secret-hop': '1', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'Basic abc', 'x-kept': 'yes' } })
    const h = JSON.parse(res.body).headers as Record<string, string>
    expect(h['x-secret-hop']).toBeUndefined()
    expect(h['proxy-authorization']).toBeUndefined()
    expect(h['keep-alive']).toBeUndefined()
    expect(h['x-kept']).toBe('yes')
  })

  test('/a/../admin arrives as /admin; merged slashes; %2F → 400 that never reaches the app', async () => {
    const r1 = await plainRequest(orders.outbound, { path: '/a/../admin', headers: { host: 'payments' } })
    expect(JSON.parse(r1.body).url).toBe('/admin')
    const r2 = await plainRequest(orders.outbound, { path: '//x//y', headers: { host: 'payments' } })
    expect(JSON.parse(r2.body).url).toBe('/x/y')
    const hits = app.hits
    const r3 = await plainRequest(orders.outbound, { path: '/a%2Fadmin', headers: { host: 'payments' } })
    expect(r3.status).toBe(400)
    expect(r3.headers['x-remora-response-flags']).toBe('DPE')
    expect(r3.headers['x-remora-error-code']).toBe('REMORA_ERR_BAD_PATH')
    const r4 = await mtlsRequest(payments.inbound, orders.leaf, pki.caPem, { path: '/a%5cadmin' })
    expect(r4.refused === false && r4.status).toBe(400)
    expect(app.hits).toBe(hits)
  })

  test('access log lines never carry the query string or header values', async () => {
    await plainRequest(orders.outbound, { path: '/p?token=s3cr3t', headers: { host: 'payments', authorization: 'Bearer s3cr3t' } })
    await until(() => payments.accessLog.some((l) => l.path === '/p'))
    const all = JSON.stringify([...orders.accessLog, ...payments.accessLog])
    expect(all).not.toContain('s3cr3t')
  })
})
