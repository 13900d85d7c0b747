import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { plainRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { freePort, startUpstream, type Upstream } from '../helpers/upstream.js'

// Each proxy-generated error: status, flag, code, access-log line.
let pki: TestPki
let app: Upstream
let slowApp: Upstream
let brokenPort: number
let broken: net.Server
let payments: TestSidecar
let slowSidecar: TestSidecar
let brokenSidecar: TestSidecar
let downSidecar: TestSidecar
let orders: TestSidecar

const PAY = 'spiffe://cluster.local/ns/shop/sa/payments'

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  slowApp = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 2000))
  broken = net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 abc nonsense\r\n\r\n')))
  await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r))
  brokenPort = (broken.address() as net.AddressInfo).port
  payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address })
  slowSidecar = await startSidecar({ pki, serviceAccount: 'slow', app: slowApp.address, extra: { inbound: { port: 0, bind: '127.0.0.1', app: slowApp.address, timeout: '300ms' } } })
  brokenSidecar = await startSidecar({ pki, serviceAccount: 'broken', app: `127.0.0.1:${brokenPort}` })
  downSidecar = await startSidecar({ pki, serviceAccount: 'down', app: `127.0.0.1:${await freePort()}` })
  const deadPort = await freePort()
  orders = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: '127.0.0.1:1',
    clusters: [
      { name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: [PAY] },
      { name: 'imposter.shop', hosts: ['imposter'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/imposter'] },
      { name: 'slow.shop', hosts: ['slow'], endpoints: [`127.0.0.1:${slowSidecar.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/slow'] },
      { name: 'slow-route.shop', hosts: ['slow-route'], endpoints: [`127.0.0.1:${slowSidecar.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/slow'], timeout: '200ms' },
      { name: 'broken.shop', hosts: ['broken'], endpoints: [`127.0.0.1:${brokenSidecar.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/broken'] },
      { name: 'down.shop', hosts: ['down'], endpoints: [`127.0.0.1:${downSidecar.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/down'] },
      { name: 'gone.shop', hosts: ['gone'], endpoints: [`127.0.0.1:${deadPort}`], identities: [PAY] },
      { name: 'empty.shop', hosts: ['empty'], endpoints: [], identities: [PAY] },
    ],
  })
})

afterAll(async () => {
  for (const s of [orders, payments, slowSidecar, brokenSidecar, downSidecar]) await s?.close()
  await app?.close()
  await slowApp?.close()
  broken?.close()
})

describe('proxy-generated errors', () => {
  test('secure naming: a server whose SPIFFE ID is not the cluster identity → 503 UF, body says why', async () => {
    const hits = app.hits
    const res = await plainRequest(orders.outbound, { headers: { host: 'imposter' } })
    expect(res.status).toBe(503)
    expect(res.headers['x-remora-response-flags']).toBe('UF')
    expect(res.headers['x-remora-error-code']).toBe('REMORA_ERR_UPSTREAM_SECURE_NAMING')
    expect(res.body).toContain('presented spiffe://cluster.local/ns/shop/sa/payments')
    expect(res.body).toContain('spiffe://cluster.local/ns/shop/sa/imposter')
    expect(app.hits).toBe(hits)
    const line = orders.accessLog.at(-1)!
    expect([line.response_code, line.response_flags]).toEqual([503, 'UF'])
  })

  test('secure naming holds on a reused keep-alive pool: the right identity still works', async () => {
    expect((await plainRequest(orders.outbound, { headers: { host: 'payments' } })).status).toBe(200)
    expect((await plainRequest(orders.outbound, { headers: { host: 'imposter' } })).status).toBe(503)
    expect((await plainRequest(orders.outbound, { headers: { host: 'payments' } })).status).toBe(200)
  })

  test('app down → 503 UF at the inbound sidecar, with its access-log line', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'down' } })
    expect(res.status).toBe(503)
    expect(res.headers['x-remora-response-flags']).toBe('UF')
    const line = downSidecar.accessLog.at(-1)!
    expect([line.response_code, line.response_flags, line.error_code]).toEqual([503, 'UF', 'REMORA_ERR_UPSTREAM_CONNECT'])
  })

  test('endpoint unreachable outbound → 503 UF', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'gone' } })
    expect(res.status).toBe(503)
    expect(res.headers['x-remora-response-flags']).toBe('UF')
    expect(orders.accessLog.at(-1)!.response_flags).toBe('UF')
  })

  test('cluster without endpoints → 503 UH', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'empty' } })
    expect(res.status).toBe(503)
    expect(res.headers['x-remora-response-flags']).toBe('UH')
  })

  test('slow app → 504 UT (inbound timeout)', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'slow' } })
    expect(res.status).toBe(504)
    expect(res.headers['x-remora-response-flags']).toBe('UT')
    const line = slowSidecar.accessLog.at(-1)!
    expect([line.response_code, line.response_flags]).toEqual([504, 'UT'])
  })

  test('slow upstream → 504 UT (per-cluster timeout outbound)', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'slow-route' } })
    expect(res.status).toBe(504)
    await until(() => orders.accessLog.at(-1)?.upstream_cluster === 'slow-route.shop')
    const line = orders.accessLog.at(-1)!
    expect([line.response_code, line.response_flags, line.error_code]).toEqual([504, 'UT', 'REMORA_ERR_UPSTREAM_TIMEOUT'])
  })

  test('an app that breaks HTTP → 502 UPE', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'broken' } })
    expect(res.status).toBe(502)
    expect(res.headers['x-remora-response-flags']).toBe('UPE')
    expect(brokenSidecar.accessLog.at(-1)!.response_flags).toBe('UPE')
  })
})
