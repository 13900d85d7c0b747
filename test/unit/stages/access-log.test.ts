// accessLog: one entry per request, written after the response (also when the chain throws),
// with the fields of AccessLogEntry and never the query string or a header value.
import { describe, expect, test } from 'vitest'
import { proxyError, type RequestContext } from '../../../proxy/pipeline/index.js'
import type { Decision } from '../../../proxy/policy/index.js'
import { createAccessLogStage, type AccessLogEntry } from '../../../proxy/stages/index.js'
import { startGrpcCall } from '../../../proxy/telemetry/grpc.js'
import { FRONTEND, peer, recordingNext, requestContext, sanitizedContext } from './context.js'

const ALLOW: Decision = { action: 'ALLOW', policy: 'shop/allow-frontend', ruleIndex: 0, reason: 'allow by shop/allow-frontend rules[0]', dryRun: [], audit: null }

const FIELDS = [
  'start_time', 'direction', 'method', 'authority', 'path', 'protocol', 'response_code', 'response_flags', 'error_code', 'duration_ms', 'upstream_service_time_ms',
  'bytes_received', 'bytes_sent', 'upstream_cluster', 'upstream_host', 'downstream_remote_address', 'downstream_peer_principal', 'connection_security_policy',
  'request_id', 'authz_decision', 'authz_policy', 'authz_reason', 'authz_rule', 'trace_id', 'span_id',
]

/** What an upstream terminal and the stages before it leave on the context for a proxied 200. */
function served(ctx: RequestContext): void {
  ctx.res.writeHead(200, { 'content-type': 'text/plain' })
  ctx.res.end('ok')
  Object.assign(ctx, { cluster: 'inbound|8080||', upstreamHost: '127.0.0.1:8080', bytesReceived: 12, bytesSent: 2, upstreamMs: 1.23456, decision: ALLOW })
}

function stage() {
  const entries: AccessLogEntry[] = []
  return { entries, build: createAccessLogStage((e) => void entries.push(e)) }
}

describe('accessLog', () => {
  test('one entry for a proxied request, with the fields of AccessLogEntry', async () => {
    const { entries, build } = stage()
    const ctx = sanitizedContext({ method: 'POST', target: '/orders', peer: peer(FRONTEND), sourceIp: '10.0.0.7', sourcePort: 40123 })
    await build(recordingNext(served))(ctx)
    expect(entries).toHaveLength(1)
    const e = entries[0]!
    expect(Object.keys(e).sort()).toEqual([...FIELDS].sort())
    expect(e).toMatchObject({
      direction: 'inbound',
      method: 'POST',
      authority: 'orders.shop',
      path: '/orders',
      protocol: 'HTTP/1.1',
      response_code: 200,
      response_flags: '-',
      error_code: null,
      upstream_service_time_ms: 1.235,
      bytes_received: 12,
      bytes_sent: 2,
      upstream_cluster: 'inbound|8080||',
      upstream_host: '127.0.0.1:8080',
      downstream_remote_address: '10.0.0.7:40123',
      downstream_peer_principal: FRONTEND,
      connection_security_policy: 'mutual_tls',
      request_id: 'req-1',
      authz_decision: 'ALLOW',
      authz_policy: 'shop/allow-frontend',
      authz_reason: 'allow by shop/allow-frontend rules[0]',
      authz_rule: 0,
      trace_id: null,
      span_id: null,
    })
    expect(new Date(e.start_time).getTime()).toBe(ctx.startTime)
    expect(e.duration_ms).toBeGreaterThanOrEqual(0)
  })

  test('the entry is written after next completes, not before', async () => {
    const { entries, build } = stage()
    let seenDuringNext = -1
    await build(recordingNext((c) => {
      served(c)
      seenDuringNext = entries.length
    }))(sanitizedContext({}))
    expect(seenDuringNext).toBe(0)
    expect(entries).toHaveLength(1)
  })

  test('never the query string nor a header value, even a credential', async () => {
    const { entries, build } = stage()
    const ctx = sanitizedContext({ target: '/orders?access_token=QUERYSECRET', rawHeaders: ['Authorization', 'Bearer HEADERSECRET', 'Cookie', 'session=COOKIESECRET', 'User-Agent', 'UASECRET'] })
    await build(recordingNext(served))(ctx)
    const line = JSON.stringify(entries[0])
    expect(entries[0]!.path).toBe('/orders')
    for (const s of ['QUERYSECRET', 'access_token', 'HEADERSECRET', 'COOKIESECRET', 'UASECRET']) expect(line).not.toContain(s)
  })

  test('also written when next throws; the error still propagates', async () => {
    const { entries, build } = stage()
    const ctx = sanitizedContext({})
    const boom = proxyError('REMORA_ERR_UPSTREAM_CONNECT')
    await expect(build(async (c) => {
      c.flags.push('UF')
      c.errorCode = 'REMORA_ERR_UPSTREAM_CONNECT'
      throw boom
    })(ctx)).rejects.toBe(boom)
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ response_flags: 'UF', error_code: 'REMORA_ERR_UPSTREAM_CONNECT' })
  })

  test('a refusal: flags and code as rescue recorded them, several flags joined by ","', async () => {
    const { entries, build } = stage()
    await build(async (c) => {
      c.res.writeHead(503, {})
      c.res.end('')
      c.flags.push('UF', 'UC')
      c.errorCode = 'REMORA_ERR_UPSTREAM_RESET'
      c.errorDetail = 'socket hang up'
    })(sanitizedContext({}))
    expect(entries[0]).toMatchObject({ response_code: 503, response_flags: 'UF,UC', error_code: 'REMORA_ERR_UPSTREAM_RESET', detail: 'socket hang up' })
  })

  test('the caller went away before a response (DC): response_code 0', async () => {
    const { entries, build } = stage()
    await build(async (c) => void c.flags.push('DC'))(sanitizedContext({}))
    expect(entries[0]!.response_code).toBe(0)
  })

  test('a verified JWT adds request_principal (iss/sub), never the token', async () => {
    const { entries, build } = stage()
    const ctx = sanitizedContext({ rawHeaders: ['Authorization', 'Bearer eyJ.TOKEN.sig'] })
    await build(recordingNext((c) => {
      served(c)
      c.auth = { principal: 'https://issuer.test/alice', audiences: [], presenter: null, claims: { sub: 'alice' } }
    }))(ctx)
    expect(entries[0]!.request_principal).toBe('https://issuer.test/alice')
    expect(JSON.stringify(entries[0])).not.toContain('TOKEN')
  })

  test('trace_link only on failed requests: present on a proxy error, absent on a 200', async () => {
    const link = 'http://127.0.0.1:16686/trace/0af7651916cd43dd8448eb211c80319c'
    const { entries, build } = stage()
    await build(recordingNext((c) => {
      served(c)
      c.traceLink = link
    }))(sanitizedContext({}))
    await build(async (c) => {
      c.traceLink = link
      c.res.writeHead(403, {})
      c.flags.push('AZ')
      c.errorCode = 'REMORA_ERR_AUTHZ_DENIED'
    })(sanitizedContext({}))
    expect(entries[0]).not.toHaveProperty('trace_link')
    expect(entries[1]!.trace_link).toBe(link)
  })

  test('a request refused before sanitize ran: the fields that exist, empty path', async () => {
    const { entries, build } = stage()
    await build(async () => {
      throw proxyError('REMORA_ERR_BAD_HOST')
    })(requestContext({ direction: 'outbound', host: null })).catch(() => {})
    expect(entries[0]).toMatchObject({ direction: 'outbound', authority: '', path: '', downstream_peer_principal: null, connection_security_policy: 'none' })
  })

  test('the traffic record\'s fields: the port the caller asked for, a gRPC status; absent on a plain request with a default decision', async () => {
    const { entries, build } = stage()
    await build(recordingNext(served))(sanitizedContext({}, { originalDst: { address: '10.0.0.9', port: 9090, family: 4 } }))
    const grpc = sanitizedContext({ httpVersion: '2.0' })
    startGrpcCall(grpc).status = 5
    await build(recordingNext(served))(grpc)
    await build(recordingNext((c) => void c.res.end('ok')))(sanitizedContext({}))
    expect(entries[0]).toMatchObject({ destination_port: 9090, authz_rule: 0 })
    expect(entries[1]).toMatchObject({ grpc_status: 5, protocol: 'HTTP/2.0' })
    for (const k of ['authz_rule', 'destination_port', 'grpc_status']) expect(entries[2]).not.toHaveProperty(k)
    expect(entries[0]).not.toHaveProperty('grpc_status')
  })
})
