import http from 'node:http'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { rawExchange, startSidecar, TEST_ENGINE, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// Forwarding behaviours either engine must have (run under REMORA_TEST_ENGINE=raw and node-http):
// per-request endpoint choice on a keep-alive connection, pipelining, long header blocks, HEAD,
// and a pooled upstream connection the app closed while idle.
let pki: TestPki
let appA: Upstream
let appB: Upstream
let paymentsA: TestSidecar
let paymentsB: TestSidecar
let orders: TestSidecar
const PAY = 'spiffe://cluster.local/ns/shop/sa/payments'

beforeAll(async () => {
  pki = await createTestPki()
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': 1234, 'x-head': 'yes' })
      res.end()
      return
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ url: req.url, headers: req.headers }))
  }
  appA = await startUpstream(handler)
  appB = await startUpstream(handler)
  // The apps close idle keep-alive connections quickly: the sidecars' pools must cope.
  appA.server.keepAliveTimeout = 100
  appB.server.keepAliveTimeout = 100
  paymentsA = await startSidecar({ pki, serviceAccount: 'payments', app: appA.address })
  paymentsB = await startSidecar({ pki, serviceAccount: 'payments', app: appB.address })
  orders = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: '127.0.0.1:1',
    clusters: [{ name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${paymentsA.inbound}`, `127.0.0.1:${paymentsB.inbound}`], identities: [PAY] }],
  })
})

afterAll(async () => {
  for (const s of [orders, paymentsA, paymentsB]) await s?.close()
  await appA?.close()
  await appB?.close()
})

/** Resolves once the app has closed every connection (its keep-alive timeout fired). */
async function idleClosed(app: Upstream): Promise<void> {
  const end = Date.now() + 5000
  for (;;) {
    const n = await new Promise<number>((r) => app.server.getConnections((_e, c) => r(c)))
    if (n === 0) return
    if (Date.now() > end) throw new Error('the app kept its connections open')
    await new Promise((r) => setTimeout(r, 20))
  }
}

function get(agent: http.Agent, headers: http.OutgoingHttpHeaders = {}, method = 'GET'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders; socket: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: orders.outbound, path: '/x', method, headers: { host: 'payments', ...headers }, agent }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, socket: req.socket }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe(`forwarding (${TEST_ENGINE ?? 'default'} engine)`, () => {
  test('one keep-alive connection from the app: each request picks its endpoint anew (round robin)', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const [a0, b0] = [appA.hits, appB.hits]
    const sockets = new Set<unknown>()
    for (let i = 0; i < 4; i++) {
      const r = await get(agent)
      expect(r.status).toBe(200)
      sockets.add(r.socket)
    }
    agent.destroy()
    expect(sockets.size).toBe(1)
    expect([appA.hits - a0, appB.hits - b0]).toEqual([2, 2])
  })

  test('pipelined requests are answered in order on one connection', async () => {
    const one = 'GET /p1 HTTP/1.1\r\nHost: payments\r\n\r\n'
    const two = 'GET /p2 HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n'
    const out = await rawExchange(orders.outbound, one + two, { waitMs: 3000 })
    const statuses = out.match(/HTTP\/1\.1 \d{3}/g)
    expect(statuses).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200'])
    expect(out.indexOf('"/p1"')).toBeGreaterThan(0)
    expect(out.indexOf('"/p2"')).toBeGreaterThan(out.indexOf('"/p1"'))
  })

  test('a long header block (more pairs than llhttp hands over at once) arrives whole', async () => {
    const agent = new http.Agent({ keepAlive: false })
    const headers: http.OutgoingHttpHeaders = {}
    for (let i = 0; i < 80; i++) headers[`x-h-${i}`] = `v${i}`
    const r = await get(agent, headers)
    expect(r.status).toBe(200)
    const seen = JSON.parse(r.body).headers as Record<string, string>
    for (let i = 0; i < 80; i++) expect(seen[`x-h-${i}`]).toBe(`v${i}`)
  })

  test('HEAD: Content-Length comes back, no body follows, the connection stays usable', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const h = await get(agent, {}, 'HEAD')
    expect(h.status).toBe(200)
    expect(h.headers['content-length']).toBe('1234')
    expect(h.body).toBe('')
    const g = await get(agent)
    expect(g.status).toBe(200)
    expect(JSON.parse(g.body).url).toBe('/x')
    agent.destroy()
  })

  test('a pooled connection the app closed while idle is not an error for the next request', async () => {
    const agent = new http.Agent({ keepAlive: false })
    expect((await get(agent)).status).toBe(200)
    expect((await get(agent)).status).toBe(200)
    await Promise.all([appA, appB].map(idleClosed)) // the apps' keep-alive timeout is 100 ms
    for (let i = 0; i < 4; i++) expect((await get(agent)).status).toBe(200)
  })
})
