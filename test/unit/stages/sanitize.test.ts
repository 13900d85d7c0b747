// sanitize: header hygiene, XFCC / x-forwarded-proto / x-request-id, path normalization and the Host,
// method and Transfer-Encoding rules, each refusal before `next` runs, each with its passing twin.
import { describe, expect, test } from 'vitest'
import { createSanitizeStage } from '../../../proxy/stages/index.js'
import type { PathNormalization } from '../../../proxy/policy/index.js'
import { FRONTEND, OWN_ID, peer, proxyErrorOf, recordingNext, requestContext, type RequestOptions } from './context.js'

function run(o: RequestOptions, opts: { pathNormalization?: PathNormalization } = {}) {
  const direction = o.direction ?? 'inbound'
  const next = recordingNext()
  const handler = createSanitizeStage({ direction, pathNormalization: opts.pathNormalization ?? 'MERGE_SLASHES', ownId: OWN_ID })(next)
  const ctx = requestContext({ ...o, direction })
  return { ctx, next, done: handler(ctx) }
}

async function passes(o: RequestOptions, opts?: { pathNormalization?: PathNormalization }) {
  const r = run(o, opts)
  await r.done
  expect(r.next.calls).toEqual([r.ctx])
  return r.ctx
}

async function refused(o: RequestOptions, opts?: { pathNormalization?: PathNormalization }) {
  const r = run(o, opts)
  const err = await proxyErrorOf(r.done)
  expect(r.next.calls).toHaveLength(0)
  return err
}

describe('sanitize: headers', () => {
  test('hop-by-hop fields and Expect are not forwarded; end-to-end fields are', async () => {
    const ctx = await passes({
      method: 'POST',
      rawHeaders: ['Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Proxy-Connection', 'keep-alive', 'TE', 'trailers', 'Upgrade', 'h2c', 'Trailer', 'x-sum', 'Proxy-Authorization', 'Basic c2VjcmV0', 'Expect', '100-continue', 'Transfer-Encoding', 'chunked', 'Accept', 'text/plain', 'X-Custom', 'kept'],
    })
    for (const k of ['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'proxy-authorization', 'expect', 'transfer-encoding']) expect(ctx.headers).not.toHaveProperty(k)
    expect(ctx.headers).toMatchObject({ accept: 'text/plain', 'x-custom': 'kept', host: 'orders.shop' })
  })

  test('a field named in Connection is removed; one not named is kept', async () => {
    const ctx = await passes({ rawHeaders: ['Connection', 'close, X-Private', 'X-Private', 'secret', 'X-Public', 'shown'] })
    expect(ctx.headers).not.toHaveProperty('x-private')
    expect(ctx.headers['x-public']).toBe('shown')
  })

  test("a caller's x-remora-* and x-envoy-* headers are dropped; look-alike names are kept", async () => {
    const ctx = await passes({ rawHeaders: ['X-Remora-Denied-By', 'forged', 'x-remora-trace', 'forged', 'X-Envoy-Original-Path', '/admin', 'X-Remoraish', 'a', 'X-Envoyx', 'b'] })
    expect(Object.keys(ctx.headers).filter((k) => k.startsWith('x-remora-') || k.startsWith('x-envoy-'))).toEqual([])
    expect(ctx.headers).toMatchObject({ 'x-remoraish': 'a', 'x-envoyx': 'b' })
  })

  test('the Host sent upstream is the authority as received', async () => {
    const ctx = await passes({ host: 'Orders.Shop:8080' })
    expect(ctx.headers.host).toBe('Orders.Shop:8080')
    expect(ctx).toMatchObject({ authority: 'orders.shop:8080', host: 'orders.shop', hostPort: 8080 })
  })
})

describe('sanitize: XFCC and x-forwarded-proto', () => {
  test("inbound from a verified peer: the caller's XFCC is replaced by this sidecar's, x-forwarded-proto https", async () => {
    const p = peer(FRONTEND)
    const ctx = await passes({ peer: p, rawHeaders: ['X-Forwarded-Client-Cert', 'By=spiffe://evil/x;URI=spiffe://cluster.local/ns/kube-system/sa/admin'] })
    expect(ctx.headers['x-forwarded-client-cert']).toBe(`By=${OWN_ID};Hash=${p.certHash};URI=${FRONTEND}`)
    expect(ctx.headers['x-forwarded-proto']).toBe('https')
  })

  test("inbound from a verified peer: the peer's own x-forwarded-proto is kept", async () => {
    const ctx = await passes({ peer: peer(), rawHeaders: ['X-Forwarded-Proto', 'http'] })
    expect(ctx.headers['x-forwarded-proto']).toBe('http')
  })

  test('inbound plaintext: XFCC is dropped and x-forwarded-proto is reset to http', async () => {
    const ctx = await passes({ peer: null, rawHeaders: ['X-Forwarded-Client-Cert', `By=${OWN_ID};URI=${FRONTEND}`, 'X-Forwarded-Proto', 'https'] })
    expect(ctx.headers).not.toHaveProperty('x-forwarded-client-cert')
    expect(ctx.headers['x-forwarded-proto']).toBe('http')
  })

  test("outbound: the app's XFCC never leaves, x-forwarded-proto is http", async () => {
    const ctx = await passes({ direction: 'outbound', rawHeaders: ['X-Forwarded-Client-Cert', `URI=${FRONTEND}`, 'X-Forwarded-Proto', 'https'] })
    expect(ctx.headers).not.toHaveProperty('x-forwarded-client-cert')
    expect(ctx.headers['x-forwarded-proto']).toBe('http')
  })
})

describe('sanitize: x-request-id and trace headers', () => {
  test("a caller's x-request-id is kept and becomes ctx.requestId", async () => {
    const ctx = await passes({ rawHeaders: ['X-Request-Id', 'abc-123'] })
    expect(ctx.requestId).toBe('abc-123')
    expect(ctx.headers['x-request-id']).toBe('abc-123')
  })

  test('without one (or with one over 128 characters) a UUID is minted and forwarded', async () => {
    const none = await passes({})
    expect(none.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(none.headers['x-request-id']).toBe(none.requestId)
    const long = await passes({ rawHeaders: ['X-Request-Id', 'x'.repeat(129)] })
    expect(long.requestId).toMatch(/^[0-9a-f-]{36}$/)
    expect(long.headers['x-request-id']).toBe(long.requestId)
  })

  test("the trace stage's propagation headers replace the caller's", async () => {
    const next = recordingNext()
    const ctx = requestContext({ rawHeaders: ['traceparent', '00-11111111111111111111111111111111-2222222222222222-01'] })
    ctx.traceHeaders = { traceparent: '00-11111111111111111111111111111111-3333333333333333-01' }
    await createSanitizeStage({ direction: 'inbound', pathNormalization: 'MERGE_SLASHES', ownId: OWN_ID })(next)(ctx)
    expect(ctx.headers.traceparent).toBe('00-11111111111111111111111111111111-3333333333333333-01')
  })
})

describe('sanitize: path', () => {
  test('dot segments and repeated slashes are normalized; the query is split off', async () => {
    const ctx = await passes({ target: '/api//v1/./users/../orders?id=7&token=x' })
    expect(ctx.path).toBe('/api/v1/orders')
    expect(ctx.query).toBe('?id=7&token=x')
  })

  test('BASE keeps repeated slashes', async () => {
    const ctx = await passes({ target: '/api//orders' }, { pathNormalization: 'BASE' })
    expect(ctx.path).toBe('/api//orders')
  })

  test('a percent-encoded control character is 400 REMORA_ERR_BAD_PATH before next', async () => {
    const err = await refused({ target: '/orders%00.json' })
    expect(err).toMatchObject({ code: 'REMORA_ERR_BAD_PATH', status: 400, flag: 'DPE' })
  })

  test('a raw control character is REMORA_ERR_BAD_PATH', async () => {
    expect((await refused({ target: '/orders\x01' })).code).toBe('REMORA_ERR_BAD_PATH')
  })

  test('an escaped slash (%2F) is REMORA_ERR_BAD_PATH under MERGE_SLASHES; an escaped letter passes decoded', async () => {
    expect((await refused({ target: '/admin%2Fusers' })).code).toBe('REMORA_ERR_BAD_PATH')
    expect((await passes({ target: '/%61dmin' })).path).toBe('/admin')
  })

  test('"*" is accepted for OPTIONS only', async () => {
    expect((await passes({ method: 'OPTIONS', target: '*' })).path).toBe('*')
    expect((await refused({ method: 'GET', target: '*' })).code).toBe('REMORA_ERR_BAD_PATH')
  })
})

describe('sanitize: Host', () => {
  test('a missing Host is 400 REMORA_ERR_BAD_HOST', async () => {
    expect(await refused({ host: null })).toMatchObject({ code: 'REMORA_ERR_BAD_HOST', status: 400, detail: 'missing Host' })
  })

  test('two Host headers are REMORA_ERR_BAD_HOST; one passes', async () => {
    expect(await refused({ rawHeaders: ['Host', 'admin.internal'] })).toMatchObject({ code: 'REMORA_ERR_BAD_HOST', detail: 'more than one Host header' })
    expect((await passes({})).authority).toBe('orders.shop')
  })

  test('a Host with userinfo is REMORA_ERR_BAD_HOST', async () => {
    expect((await refused({ host: 'user@orders.shop' })).code).toBe('REMORA_ERR_BAD_HOST')
  })

  test("absolute-form: the target's authority replaces Host and its path is the path", async () => {
    const ctx = await passes({ direction: 'outbound', target: 'http://Payments.Shop:9090/charge?x=1', host: 'orders.shop' })
    expect(ctx).toMatchObject({ authority: 'payments.shop:9090', host: 'payments.shop', hostPort: 9090, path: '/charge', query: '?x=1' })
    expect(ctx.headers.host).toBe('Payments.Shop:9090')
  })

  test('absolute-form with another scheme is REMORA_ERR_BAD_REQUEST', async () => {
    expect((await refused({ target: 'https://payments.shop/charge' })).code).toBe('REMORA_ERR_BAD_REQUEST')
  })
})

describe('sanitize: method and framing', () => {
  test('CONNECT is 405 REMORA_ERR_METHOD_NOT_SUPPORTED; GET passes', async () => {
    expect(await refused({ method: 'CONNECT', target: 'orders.shop:443' })).toMatchObject({ code: 'REMORA_ERR_METHOD_NOT_SUPPORTED', status: 405 })
    await passes({ method: 'GET' })
  })

  test('a Transfer-Encoding other than chunked is 501 REMORA_ERR_TRANSFER_ENCODING; chunked passes', async () => {
    expect(await refused({ method: 'POST', rawHeaders: ['Transfer-Encoding', 'gzip, chunked'] })).toMatchObject({ code: 'REMORA_ERR_TRANSFER_ENCODING', status: 501 })
    await passes({ method: 'POST', rawHeaders: ['Transfer-Encoding', 'Chunked'] })
  })
})

test('an inbound sanitize stage without ownId is refused when the chain is built (XFCC By= would say undefined)', () => {
  expect(() => createSanitizeStage({ direction: 'inbound', pathNormalization: 'MERGE_SLASHES' })).toThrow(/ownId/)
  expect(() => createSanitizeStage({ direction: 'outbound', pathNormalization: 'MERGE_SLASHES' })).not.toThrow()
})
