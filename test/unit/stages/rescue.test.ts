// rescue: the one place an error becomes a response. A catalog error answers as its status, flag
// and code through sendProxyResponse; anything else is 500 REMORA_ERR_INTERNAL; the denial reason
// and the trace link go to verified mesh peers only (responseExtras); a response already started
// is destroyed, never written twice.
import { describe, expect, test } from 'vitest'
import { RemoraError } from '../../../proxy/errors/index.js'
import { proxyError, type Handler } from '../../../proxy/pipeline/index.js'
import type { Decision } from '../../../proxy/policy/index.js'
import { createRescueStage } from '../../../proxy/stages/index.js'
import { peer, recordingNext, sanitizedContext, type RequestOptions, type TestContext } from './context.js'

const DENY: Decision = { action: 'DENY', policy: null, ruleIndex: null, reason: 'deny: no ALLOW policy matched (1 applied: shop/allow-frontend)', dryRun: [], audit: null }
const TRACE_LINK = 'http://127.0.0.1:16686/trace/0af7651916cd43dd8448eb211c80319c'

function throwing(err: unknown): Handler {
  return async () => {
    throw err
  }
}

async function rescued(err: unknown, o: RequestOptions = {}, prepare?: (ctx: TestContext) => void) {
  const internal: unknown[] = []
  const ctx = sanitizedContext(o)
  prepare?.(ctx)
  await createRescueStage({ onInternalError: (e) => void internal.push(e) })(throwing(err))(ctx)
  return { ctx, internal, head: ctx.res.heads[0], body: ctx.res.bodies[0] }
}

describe('rescue: catalog errors', () => {
  test('a ProxyError answers with its status, x-remora-response-flags and x-remora-error-code', async () => {
    const { ctx, head, body } = await rescued(proxyError('REMORA_ERR_ROUTE_NOT_FOUND', 'no cluster for host "x"'))
    expect(ctx.res.heads).toHaveLength(1)
    expect(head).toEqual({
      status: 404,
      headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body!), 'x-remora-response-flags': 'NR', 'x-remora-error-code': 'REMORA_ERR_ROUTE_NOT_FOUND' },
    })
    expect(body).toBe('no route for this host: no cluster for host "x"\n')
  })

  test('the flag, code and detail are recorded on ctx, and bytesSent counts the body', async () => {
    const { ctx, body } = await rescued(proxyError('REMORA_ERR_UPSTREAM_CONNECT', 'connection refused'))
    expect(ctx).toMatchObject({ flags: ['UF'], errorCode: 'REMORA_ERR_UPSTREAM_CONNECT', errorDetail: 'connection refused' })
    expect(ctx.bytesSent).toBe(Buffer.byteLength(body!))
  })

  test("an authorization denial keeps Envoy's exact 403 body", async () => {
    const { head, body } = await rescued(proxyError('REMORA_ERR_AUTHZ_DENIED', DENY.reason))
    expect(head!.status).toBe(403)
    expect(head!.headers['x-remora-response-flags']).toBe('AZ')
    expect(body).toBe('RBAC: access denied')
  })

  test('a JWT refusal (JW) carries www-authenticate; other refusals do not', async () => {
    const jw = await rescued(proxyError('REMORA_ERR_JWT_EXPIRED', 'exp is in the past'))
    expect(jw.head).toMatchObject({ status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"', 'x-remora-response-flags': 'JW' } })
    const az = await rescued(proxyError('REMORA_ERR_AUTHZ_DENIED'))
    expect(az.head!.headers).not.toHaveProperty('www-authenticate')
  })

  test('a downstream protocol error (DPE) closes the connection; an upstream error does not', async () => {
    const dpe = await rescued(proxyError('REMORA_ERR_BAD_PATH', 'control character or space in path'))
    expect(dpe.head).toMatchObject({ status: 400, headers: { connection: 'close', 'x-remora-response-flags': 'DPE' } })
    const uh = await rescued(proxyError('REMORA_ERR_UPSTREAM_NO_HEALTHY'))
    expect(uh.head!.headers).not.toHaveProperty('connection')
  })
})

describe('rescue: responseExtras (to verified mesh peers only)', () => {
  const denied = (ctx: TestContext) => void (ctx.decision = DENY)

  test('a verified peer gets x-remora-denied-by with the reason', async () => {
    const { head } = await rescued(proxyError('REMORA_ERR_AUTHZ_DENIED', DENY.reason), { peer: peer() }, denied)
    expect(head!.headers['x-remora-denied-by']).toBe(DENY.reason)
  })

  test('a plaintext caller does not', async () => {
    const { head } = await rescued(proxyError('REMORA_ERR_AUTHZ_DENIED', DENY.reason), { peer: null }, denied)
    expect(head!.headers).not.toHaveProperty('x-remora-denied-by')
  })

  test('a verified peer gets x-remora-trace on a proxy-generated answer; a plaintext caller does not', async () => {
    const link = (ctx: TestContext) => void (ctx.traceLink = TRACE_LINK)
    const mesh = await rescued(proxyError('REMORA_ERR_UPSTREAM_CONNECT'), { peer: peer() }, link)
    expect(mesh.head!.headers['x-remora-trace']).toBe(TRACE_LINK)
    const plain = await rescued(proxyError('REMORA_ERR_UPSTREAM_CONNECT'), { peer: null }, link)
    expect(plain.head!.headers).not.toHaveProperty('x-remora-trace')
  })
})

describe('rescue: anything else is a bug', () => {
  test('a non-catalog error is 500 REMORA_ERR_INTERNAL without its message, and onInternalError gets it once', async () => {
    const bug = new TypeError('cannot read properties of undefined (secret=hunter2)')
    const { ctx, internal, head, body } = await rescued(bug)
    expect(head).toMatchObject({ status: 500, headers: { 'x-remora-error-code': 'REMORA_ERR_INTERNAL', 'x-remora-response-flags': 'DPE' } })
    expect(body).toBe('internal proxy error\n')
    expect(ctx.errorCode).toBe('REMORA_ERR_INTERNAL')
    expect(internal).toEqual([bug])
  })

  test('a RemoraError whose code is not in the proxy catalog is also internal', async () => {
    const foreign = new RemoraError('REMORA_ERR_STORE_URL', 400, 'bad store url')
    const { head, internal } = await rescued(foreign)
    expect(head!.status).toBe(500)
    expect(internal).toEqual([foreign])
  })

  test('a catalog error is not reported as internal', async () => {
    const { internal } = await rescued(proxyError('REMORA_ERR_ROUTE_NOT_FOUND'))
    expect(internal).toEqual([])
  })
})

describe('rescue: the response already started or gone', () => {
  test('headers already sent: the response is destroyed, nothing more is written', async () => {
    const { ctx } = await rescued(proxyError('REMORA_ERR_UPSTREAM_RESET'), { headersSent: true })
    expect(ctx.res.heads).toHaveLength(0)
    expect(ctx.res.bodies).toHaveLength(0)
    expect(ctx.res.destroyCalls).toBe(1)
    expect(ctx).toMatchObject({ flags: ['UC'], errorCode: 'REMORA_ERR_UPSTREAM_RESET', bytesSent: 0 })
  })

  test('the caller went away (DC): flags recorded, nothing written', async () => {
    const { ctx } = await rescued(proxyError('REMORA_ERR_UPSTREAM_RESET'), {}, (c) => void c.flags.push('DC'))
    expect(ctx.res.heads).toHaveLength(0)
    expect(ctx.res.destroyCalls).toBe(0)
    expect(ctx.flags).toEqual(['DC', 'UC'])
  })

  test('no error: rescue writes nothing and records nothing', async () => {
    const next = recordingNext()
    const ctx = sanitizedContext({})
    await createRescueStage()(next)(ctx)
    expect(next.calls).toEqual([ctx])
    expect(ctx.res.heads).toHaveLength(0)
    expect(ctx).toMatchObject({ flags: [], errorCode: null })
  })
})
