import { afterAll, beforeAll, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { rawExchange, startPair, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// Found by the front-door fuzzer (test/reliability/fuzz): llhttp also parses RTSP requests
// (`ANNOUNCE /x RTSP/1.0`). The node:http engine forwarded them as `ANNOUNCE /x HTTP/1.1`, which
// the app's parser refused (503 UC to the caller); the raw engine forwarded them as GET.
let pki: TestPki
let app: Upstream
let payments: TestSidecar
let orders: TestSidecar

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  ;({ payments, orders } = await startPair({ pki, app: app.address }))
})

afterAll(async () => {
  await orders?.close()
  await payments?.close()
  await app?.close()
})

const tlsOpts = async () => {
  const c = await pki.issue('spiffe://cluster.local/ns/shop/sa/orders')
  return { ca: pki.caPem, cert: c.certPem, key: c.keyPem, checkServerIdentity: () => undefined }
}

for (const [name, raw] of [
  ['RTSP ANNOUNCE', 'ANNOUNCE /music HTTP/1.1\r\nHost: payments\r\n\r\n'],
  ['RTSP ANNOUNCE over RTSP/1.0', 'ANNOUNCE /music RTSP/1.0\r\nHost: payments\r\n\r\n'],
  ['RTSP ANNOUNCE as the fuzzer sent it', 'ANNOUNCE /music/sweet/music RTSP/1.0\r\nHost: payments\r\n\r\n'],
  ['RTSP SETUP', 'SETUP /music RTSP/1.0\r\nHost: payments\r\n\r\n'],
] as const) {
  test(`outbound: ${name} is not HTTP → 400, never reaches the app`, async () => {
    const hits = app.hits
    const out = await rawExchange(orders.outbound, raw, { waitMs: 1000 })
    expect(out.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request')
    expect(app.hits).toBe(hits)
  })
  test(`inbound (mTLS): ${name} is not HTTP → 400, never reaches the app`, async () => {
    const hits = app.hits
    const out = await rawExchange(payments.inbound, raw, { waitMs: 1000, tls: await tlsOpts() })
    expect(out.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request')
    expect(app.hits).toBe(hits)
  })
}

test('allow twin: an HTTP method llhttp and node:http both know (PROPFIND) still reaches the app', async () => {
  const hits = app.hits
  const out = await rawExchange(orders.outbound, 'PROPFIND /x HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n', { waitMs: 1000 })
  expect(out.split('\r\n')[0]).toBe('HTTP/1.1 200 OK')
  expect(app.hits).toBe(hits + 1)
  expect(app.requests.at(-1)?.method).toBe('PROPFIND')
})
