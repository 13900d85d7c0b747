import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

let pki: TestPki
let otherCa: TestPki
let otherDomain: TestPki
let app: Upstream
let strict: TestSidecar

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders'

beforeAll(async () => {
  pki = await createTestPki()
  otherCa = await createTestPki()
  otherDomain = await createTestPki({ trustDomain: 'evil.example' })
  app = await startUpstream()
  strict = await startSidecar({
    pki,
    serviceAccount: 'payments',
    app: app.address,
    policies: `
apiVersion: security.remora.dev/v1
kind: PeerAuthentication
metadata: { name: default, namespace: remora-system }
spec: { mtls: { mode: STRICT } }
`,
  })
})

afterAll(async () => {
  await strict?.close()
  await app?.close()
})

describe('inbound under STRICT: who gets in', () => {
  test('a mesh peer with a valid certificate reaches the app', async () => {
    const res = await mtlsRequest(strict.inbound, await pki.issue(ORDERS), pki.caPem)
    expect(res.refused).toBe(false)
    if (!res.refused) expect(res.status).toBe(200)
  })

  const refusals: [string, () => Promise<Parameters<typeof mtlsRequest>[1]>, object?][] = [
    ['no client certificate', async () => null],
    ['a certificate from another CA', async () => otherCa.issue(ORDERS)],
    ['an expired certificate', async () => pki.issue(ORDERS, { expired: true })],
    ['a not-yet-valid certificate', async () => pki.issue(ORDERS, { notYetValid: true })],
    ['a certificate without a URI SAN', async () => pki.issue(ORDERS, { uris: [] })],
    ['a certificate with two URI SANs', async () => pki.issue(ORDERS, { uris: [ORDERS, 'spiffe://cluster.local/ns/shop/sa/admin'] })],
    ['a URI SAN that is not a SPIFFE ID', async () => pki.issue(ORDERS, { uris: ['https://orders.shop'] })],
  ]
  for (const [name, leaf] of refusals) {
    test(`refused: ${name}; the app is not reached`, async () => {
      const hits = app.hits
      const res = await mtlsRequest(strict.inbound, await leaf(), pki.caPem)
      expect(res.refused).toBe(true)
      expect(app.hits).toBe(hits)
    })
  }

  test('refused: a certificate from another trust domain (same CA bundle trusted)', async () => {
    // a CA of evil.example trusted by nobody: also refused by chain; and a leaf of our CA naming another domain
    const hits = app.hits
    const foreign = await pki.issue('spiffe://evil.example/ns/shop/sa/orders')
    const res = await mtlsRequest(strict.inbound, foreign, pki.caPem)
    expect(res.refused).toBe(true)
    const res2 = await mtlsRequest(strict.inbound, await otherDomain.issue('spiffe://evil.example/ns/shop/sa/orders'), pki.caPem)
    expect(res2.refused).toBe(true)
    expect(app.hits).toBe(hits)
  })

  test('refused: TLS 1.2', async () => {
    const hits = app.hits
    const res = await mtlsRequest(strict.inbound, await pki.issue(ORDERS), pki.caPem, { tls: { maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' } })
    expect(res.refused).toBe(true)
    expect(app.hits).toBe(hits)
  })

  test('refused: plaintext', async () => {
    const hits = app.hits
    await expect(plainRequest(strict.inbound)).rejects.toThrow()
    expect(app.hits).toBe(hits)
  })
})

describe('PeerAuthentication modes', () => {
  const started: TestSidecar[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.close()))
  })

  async function withMode(spec: string, labels = { app: 'payments' }): Promise<TestSidecar> {
    const sc = await startSidecar({
      pki,
      serviceAccount: 'payments',
      labels,
      app: app.address,
      policies: `
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: { name: payments, namespace: shop }
spec: ${spec}
`,
    })
    started.push(sc)
    return sc
  }

  test('PERMISSIVE accepts plaintext (no principal) and mTLS on the same port', async () => {
    const sc = await withMode('{ mtls: { mode: PERMISSIVE } }')
    const plain = await plainRequest(sc.inbound, { path: '/plain' })
    expect(plain.status).toBe(200)
    expect(JSON.parse(plain.body).headers['x-forwarded-client-cert']).toBeUndefined()
    expect(sc.accessLog.at(-1)!.connection_security_policy).toBe('none')
    const m = await mtlsRequest(sc.inbound, await pki.issue(ORDERS), pki.caPem, { path: '/mtls' })
    expect(m.refused === false && m.status).toBe(200)
    expect(sc.accessLog.at(-1)!.downstream_peer_principal).toBe(ORDERS)
  })

  test('PERMISSIVE still refuses a bad certificate', async () => {
    const sc = await withMode('{ mtls: { mode: PERMISSIVE } }')
    const res = await mtlsRequest(sc.inbound, await otherCa.issue(ORDERS), pki.caPem)
    expect(res.refused).toBe(true)
  })

  test('no PeerAuthentication at all behaves as Istio: PERMISSIVE', async () => {
    const sc = await startSidecar({ pki, serviceAccount: 'payments', app: app.address })
    started.push(sc)
    expect((await plainRequest(sc.inbound)).status).toBe(200)
  })

  test('DISABLE accepts plaintext and refuses TLS', async () => {
    const sc = await withMode('{ mtls: { mode: DISABLE } }')
    expect((await plainRequest(sc.inbound)).status).toBe(200)
    const m = await mtlsRequest(sc.inbound, await pki.issue(ORDERS), pki.caPem)
    expect(m.refused).toBe(true)
  })

  test('portLevelMtls overrides the workload mode for the app port', async () => {
    const appPort = app.port
    const sc = await withMode(`{ selector: { matchLabels: { app: payments } }, mtls: { mode: STRICT }, portLevelMtls: { ${appPort}: { mode: PERMISSIVE } } }`)
    expect((await plainRequest(sc.inbound)).status).toBe(200)
    const sc2 = await withMode(`{ selector: { matchLabels: { app: payments } }, mtls: { mode: PERMISSIVE }, portLevelMtls: { ${appPort}: { mode: STRICT } } }`)
    await expect(plainRequest(sc2.inbound)).rejects.toThrow()
  })

  test('a selector that does not match this workload does not apply', async () => {
    const sc = await withMode('{ selector: { matchLabels: { app: other } }, mtls: { mode: STRICT } }')
    expect((await plainRequest(sc.inbound)).status).toBe(200)
  })

  test('tightening PERMISSIVE → STRICT at run time closes plaintext on open keep-alive connections too', async () => {
    const sc = await withMode('{ mtls: { mode: PERMISSIVE } }')
    const http = await import('node:http')
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const get = () =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: sc.inbound, agent }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        }).on('error', reject)
      })
    expect(await get()).toBe(200)
    const { policiesFromYaml } = await import('../helpers/mesh.js')
    sc.sidecar.applyPolicies(policiesFromYaml(`
apiVersion: security.remora.dev/v1
kind: PeerAuthentication
metadata: { name: payments, namespace: shop }
spec: { mtls: { mode: STRICT } }
`))
    const hits = app.hits
    expect(await get()).toBe(403)
    expect(app.hits).toBe(hits)
    agent.destroy()
  })
})
