// The pure pieces of the h2 engine: a received header list as the stages see it, gRPC's
// content-type test, its status mapping and grpc-message encoding.
import { describe, expect, test } from 'vitest'
import { encodeGrpcMessage, requestHead } from '../../../../proxy/engines/h2/index.js'
import { grpcStatusLabel, httpToGrpcStatus, isGrpcContentType } from '../../../../proxy/telemetry/index.js'

describe('requestHead', () => {
  test('pseudo-headers become method, target and host; regular fields keep their order; sizes per RFC 9113 §6.5.2', () => {
    const raw = [':method', 'POST', ':scheme', 'http', ':path', '/a?b=1', ':authority', 'payments.shop', 'x-one', '1', 'cookie', 'a=1']
    const h = requestHead({ ':method': 'POST', ':path': '/a?b=1', ':authority': 'payments.shop', 'x-one': '1', cookie: 'a=1' }, raw)
    expect([h.method, h.path, h.authority]).toEqual(['POST', '/a?b=1', 'payments.shop'])
    expect(h.headers).toEqual({ 'x-one': '1', cookie: 'a=1', host: 'payments.shop' })
    expect(h.rawHeaders).toEqual(['x-one', '1', 'cookie', 'a=1', 'host', 'payments.shop'])
    expect(h.fieldCount).toBe(2)
    expect(h.listSize).toBe(raw.reduce((n, s) => n + s.length, 0) + 32 * (raw.length / 2))
  })

  test('a host equal to :authority (any case) stays one Host; a different one makes two, which sanitize refuses', () => {
    expect(requestHead({ host: 'A.shop' }, [':authority', 'a.shop', 'host', 'A.shop']).rawHeaders.filter((x) => x === 'host').length).toBe(1)
    expect(requestHead({ host: 'b.shop' }, [':authority', 'a.shop', 'host', 'b.shop']).rawHeaders).toEqual(['host', 'b.shop', 'host', 'a.shop'])
  })

  test('no :authority: the host field alone (nghttp2 refuses a request with neither)', () => {
    expect(requestHead({ host: 'h.shop' }, [':method', 'GET', ':path', '/', 'host', 'h.shop']).headers.host).toBe('h.shop')
  })
})

describe('gRPC helpers', () => {
  test("content types: application/grpc, +codec and ;params are gRPC; grpc-web and others are not (Envoy's rule)", () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8', 'Application/GRPC']) expect([ct, isGrpcContentType(ct)]).toEqual([ct, true])
    for (const ct of [undefined, 'application/grpc-web', 'application/grpc-web+proto', 'application/json', 'application/grpcx']) expect([ct, isGrpcContentType(ct)]).toEqual([ct, false])
  })

  test("HTTP → gRPC status, per gRPC's http-grpc-status-mapping", () => {
    expect([400, 401, 403, 404, 429, 502, 503, 504, 500, 200].map(httpToGrpcStatus)).toEqual([13, 16, 7, 12, 14, 14, 14, 14, 2, 2])
  })

  test('the grpc_response_status label: the seen status, else the mapped HTTP one, empty when nothing was sent', () => {
    expect(grpcStatusLabel({ requestMessages: 0, responseMessages: 0, status: 5 }, 200)).toBe('5')
    expect(grpcStatusLabel({ requestMessages: 0, responseMessages: 0, status: null }, 503)).toBe('14')
    expect(grpcStatusLabel({ requestMessages: 0, responseMessages: 0, status: null }, 0)).toBe('')
  })

  test('grpc-message is percent-encoded outside printable ASCII, and % itself', () => {
    expect(encodeGrpcMessage('RBAC: access denied')).toBe('RBAC: access denied')
    expect(encodeGrpcMessage('100% naïve\n')).toBe('100%25 na%C3%AFve%0A')
  })
})
