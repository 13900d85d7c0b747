import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createCsr, generateKeyPair as generateEcKeys } from '../../control-plane/ca/index.js'
import { X509Certificate } from 'node:crypto'
import { plainRequest, rawExchange, until } from '../helpers/mesh.js'
import { postJson, startMeshSidecar, startTestControlPlane, type TestControlPlane } from '../helpers/control-plane.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

let cp: TestControlPlane
let app: Upstream
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders'

beforeAll(async () => {
  cp = await startTestControlPlane()
  app = await startUpstream()
})
afterAll(async () => {
  await cp?.close()
  await app?.close()
})

async function csrFor(id: string): Promise<string> {
  const { keys } = await generateEcKeys()
  return createCsr(keys, id)
}

describe('bootstrap: join token + CSR → certificate for exactly that SPIFFE ID', () => {
  test('a valid join token gets a certificate for its SPIFFE ID, the trust bundle and the signing key', async () => {
    const r = await postJson(cp.address, '/v1/bootstrap', { token: await cp.token('orders'), csr: await csrFor(ORDERS) }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(200)
    const cert = new X509Certificate(r.json.certPem as string)
    expect(cert.subjectAltName).toBe(`URI:${ORDERS}`)
    expect(cert.verify(new X509Certificate(cp.cp.caPem).publicKey)).toBe(true)
    expect(r.json.trustBundle).toBe(cp.cp.caPem)
    expect((r.json.signingKey as { kid: string; d?: string }).kid).toBeTruthy()
    expect((r.json.signingKey as { d?: string }).d).toBeUndefined()
  })

  test('an expired join token is refused with REMORA_ERR_CP_TOKEN_EXPIRED', async () => {
    const token = await cp.token('orders', { ttlMs: 1000 })
    await new Promise((r) => setTimeout(r, 2100))
    const r = await postJson(cp.address, '/v1/bootstrap', { token, csr: await csrFor(ORDERS) }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(401)
    expect(r.json.error?.code).toBe('REMORA_ERR_CP_TOKEN_EXPIRED')
  })

  test('a tampered join token (sub changed, signature kept) is refused', async () => {
    const token = await cp.token('orders')
    const [h, p, s] = token.split('.') as [string, string, string]
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
    claims.sub = 'spiffe://cluster.local/ns/shop/sa/payments'
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`
    const r = await postJson(cp.address, '/v1/bootstrap', { token: forged, csr: await csrFor('spiffe://cluster.local/ns/shop/sa/payments') }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(401)
    expect(r.json.error?.code).toBe('REMORA_ERR_CP_TOKEN_INVALID')
    expect(r.json.error?.message).toMatch(/signature/)
  })

  test('an unsigned token (alg: none) is refused', async () => {
    const token = new UnsecuredJWT({}).setSubject(ORDERS).setIssuer('remora-control-plane').setAudience('remora-bootstrap').setIssuedAt().setExpirationTime('1h').setJti('x').encode()
    const r = await postJson(cp.address, '/v1/bootstrap', { token, csr: await csrFor(ORDERS) }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(401)
    expect(r.json.error?.code).toBe('REMORA_ERR_CP_TOKEN_INVALID')
  })

  test('a token signed by another key (right shape, right claims) is refused', async () => {
    const { privateKey } = await generateKeyPair('ES256')
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', typ: 'remora-join+jwt' })
      .setSubject(ORDERS)
      .setIssuer('remora-control-plane')
      .setAudience('remora-bootstrap')
      .setIssuedAt()
      .setExpirationTime('1h')
      .setJti('y')
      .sign(privateKey)
    const r = await postJson(cp.address, '/v1/bootstrap', { token, csr: await csrFor(ORDERS) }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(401)
    expect(r.json.error?.code).toBe('REMORA_ERR_CP_TOKEN_INVALID')
  })

  test("a token reused for another ID (orders' token, a CSR for payments) is refused: the CSR must name the token's identity", async () => {
    const r = await postJson(cp.address, '/v1/bootstrap', { token: await cp.token('orders'), csr: await csrFor('spiffe://cluster.local/ns/shop/sa/payments') }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(403)
    expect(r.json.error?.code).toBe('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH')
  })

  test('the sidecar routes refuse a caller without a workload certificate', async () => {
    const r = await postJson(cp.address, '/v1/stream', { service: 'x', address: '127.0.0.1:1' }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(401)
    expect(r.json.error?.code).toBe('REMORA_ERR_CP_CLIENT_CERT_REQUIRED')
  })

  test('the admin API refuses a wrong admin token', async () => {
    const r = await postJson(cp.address, '/v1/tokens', { namespace: 'shop', serviceAccount: 'x' }, { caPem: cp.cp.caPem })
    expect(r.status).toBe(401)
    expect(r.json.error?.code).toBe('REMORA_ERR_CP_UNAUTHENTICATED')
  })
})

describe('a sidecar before its first snapshot fails closed', () => {
  test('no token: outbound answers 503 NC, inbound refuses connections, /ready is false; with a token it becomes ready', async () => {
    let token: string | null = null
    const sc = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'frontend', app: app.address, token: null })
    try {
      const out = await plainRequest(sc.outbound, { headers: { host: 'orders.shop' } })
      expect(out.status).toBe(503)
      expect(out.headers['x-remora-response-flags']).toBe('NC')
      expect(out.headers['x-remora-error-code']).toBe('REMORA_ERR_NO_CONFIG')
      expect(await rawExchange(sc.inbound, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', { waitMs: 1000 })).toBe('')
      const ready = await plainRequest(sc.admin, { path: '/ready' })
      expect(ready.status).toBe(503)
      expect(app.hits).toBe(0)
      token = await cp.token('frontend')
      void token
    } finally {
      await sc.close()
    }
    const good = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'frontend', app: app.address, token })
    try {
      await good.client.next('applied')
      expect((await plainRequest(good.admin, { path: '/ready' })).status).toBe(200)
      await until(() => good.sidecar.configured, 5000, 'configured')
    } finally {
      await good.close()
    }
  })
})
