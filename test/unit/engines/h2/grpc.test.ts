// gRPC through the h2 front and terminal: messages counted without copying (prefixes split across
// DATA frames included), the status from trailers or a trailers-only head, a proxy-generated answer
// sent as Envoy sends it to a gRPC caller (200, grpc-status from the HTTP status, grpc-message), and
// Istio's labels and message counters on the metrics, while a plain HTTP/2 request keeps its labels.
import http2 from 'node:http2'
import { afterEach, describe, expect, test } from 'vitest'
import { GrpcMessageCounter } from '../../../../proxy/engines/h2/index.js'
import { proxyError, type RequestContext, type Stage } from '../../../../proxy/pipeline/index.js'
import { grpcFacts } from '../../../../proxy/telemetry/index.js'
import { CredentialStore } from '../../../../proxy/tls/index.js'
import { parsePrometheusText, samples } from '../../../helpers/metrics.js'
import { until } from '../../../helpers/mesh.js'
import { closeSession, connect, createH2Upstream, grpcMessage, request, routeTo, SidecarMetrics, startFront, startH2App, testChain, type AppStream } from './harness.js'

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!()
})

const GRPC = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' }

describe('GrpcMessageCounter', () => {
  test('counts whole messages in one chunk, zero-length ones included', () => {
    const c = new GrpcMessageCounter()
    expect(c.push(Buffer.concat([grpcMessage('a'), grpcMessage(''), grpcMessage('abc')]))).toBe(3)
  })

  test('a prefix split across chunks counts once; a payload spread over many chunks is skipped', () => {
    const all = Buffer.concat([grpcMessage('x'.repeat(70_000)), grpcMessage('yy')])
    for (const size of [1, 3, 5, 7, 4096]) {
      const c = new GrpcMessageCounter()
      let n = 0
      for (let i = 0; i < all.length; i += size) n += c.push(all.subarray(i, i + size))
      expect([size, n, c.messages]).toEqual([size, 2, 2])
    }
  })

  test('a length near 2^32 is read as unsigned', () => {
    const c = new GrpcMessageCounter()
    c.push(Buffer.from([0, 0xff, 0xff, 0xff, 0xf0]))
    c.push(Buffer.alloc(100))
    expect(c.messages).toBe(1)
  })
})

async function grpcThrough(onStream: AppStream, o: { before?: Stage } = {}) {
  const app = await startH2App(onStream)
  const upstream = createH2Upstream(new CredentialStore(null))
  const metrics = new SidecarMetrics({ processMetrics: false })
  const seen: RequestContext[] = []
  const front = await startFront(() => testChain(upstream, () => routeTo(app.address), { seen, metrics, before: o.before }))
  const c = connect(front.port)
  cleanup.push(() => app.close(), () => upstream.close(), () => front.close(), () => closeSession(c))
  const scrape = async () => parsePrometheusText((await metrics.scrape()).body)
  return { app, c, seen, scrape }
}

/** A server-streaming handler: reads the request, answers `n` messages, then OK or `status` in trailers. */
const streaming =
  (n: number, status = 0, message?: string): AppStream =>
  (s) => {
    s.resume()
    s.once('end', () => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
      s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': String(status), ...(message ? { 'grpc-message': message } : {}) }))
      const body = Buffer.concat(Array.from({ length: n }, (_, i) => grpcMessage(`reply ${i}`)))
      // Written in 3-byte pieces, so prefixes straddle DATA frames.
      for (let i = 0; i < body.length; i += 3) s.write(body.subarray(i, i + 3))
      s.end()
    })
  }

describe('gRPC calls', () => {
  test('server streaming: messages counted both ways, grpc-status from the trailers, Istio labels and counters', async () => {
    const { c, seen, scrape } = await grpcThrough(streaming(4))
    const r = await request(c, { ...GRPC, ':path': '/pkg.Svc/List' }, Buffer.concat([grpcMessage('q1'), grpcMessage('q2')]))
    expect(r.trailers?.['grpc-status']).toBe('0')
    await until(() => seen.length === 1, 2000, 'the call finished')
    expect(grpcFacts(seen[0]!)).toEqual({ requestMessages: 2, responseMessages: 4, status: 0 })
    const f = await scrape()
    expect(samples(f, 'istio_requests_total', { request_protocol: 'grpc', grpc_response_status: '0', response_code: '200' })[0]?.value).toBe('1')
    expect(samples(f, 'istio_request_messages_total', { reporter: 'source' })[0]?.value).toBe('2')
    expect(samples(f, 'istio_response_messages_total', { reporter: 'source' })[0]?.value).toBe('4')
    expect(Object.keys(samples(f, 'istio_request_messages_total')[0]!.labels).sort()).toEqual([
      'destination_principal',
      'destination_service',
      'destination_service_name',
      'destination_workload',
      'destination_workload_namespace',
      'reporter',
      'source_app',
      'source_principal',
      'source_workload',
      'source_workload_namespace',
    ])
  })

  test('a non-OK status in the trailers is the grpc_response_status label; HTTP stays 200', async () => {
    const { c, scrape } = await grpcThrough(streaming(0, 5, 'no such order'))
    const r = await request(c, { ...GRPC, ':path': '/pkg.Svc/Get' }, grpcMessage('id'))
    expect(r.trailers).toMatchObject({ 'grpc-status': '5', 'grpc-message': 'no such order' })
    const f = await scrape()
    expect(samples(f, 'istio_requests_total', { grpc_response_status: '5', response_code: '200', response_flags: '-' })[0]?.value).toBe('1')
  })

  test('a trailers-only answer from the app: its status is read from the head', async () => {
    const { c, seen } = await grpcThrough((s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true }))
    const r = await request(c, { ...GRPC, ':path': '/pkg.Svc/Nope' }, grpcMessage(''))
    expect([r.endAfterHeaders, r.headers['grpc-status']]).toEqual([true, '12'])
    await until(() => seen.length === 1, 2000, 'the call finished')
    expect(grpcFacts(seen[0]!)?.status).toBe(12)
  })

  test("the sidecar's own denial reaches a gRPC caller as Envoy sends it: 200, grpc-status 7 PERMISSION_DENIED, grpc-message, the flag; the app never sees it", async () => {
    const deny: Stage = () => async () => {
      throw proxyError('REMORA_ERR_AUTHZ_DENIED')
    }
    const { c, seen, app, scrape } = await grpcThrough(streaming(1), { before: deny })
    const r = await request(c, { ...GRPC, ':path': '/pkg.Admin/Drop' }, grpcMessage('x'))
    expect(r.status).toBe(200)
    expect(r.endAfterHeaders).toBe(true) // trailers-only
    expect(r.headers['content-type']).toBe('application/grpc')
    expect(r.headers['grpc-status']).toBe('7')
    expect(r.headers['grpc-message']).toBe('RBAC: access denied')
    expect(r.headers['x-remora-response-flags']).toBe('AZ')
    expect(app.streams).toBe(0)
    await until(() => seen.length === 1, 2000, 'the call finished')
    expect([seen[0]!.res.statusCode, seen[0]!.flags]).toEqual([200, ['AZ']])
    const f = await scrape()
    expect(samples(f, 'istio_requests_total', { grpc_response_status: '7', response_flags: 'AZ', response_code: '200' })[0]?.value).toBe('1')
  })

  test('an upstream failure before the head, to a gRPC caller: 503 → grpc-status 14 UNAVAILABLE, grpc-message percent-encoded', async () => {
    const { c } = await grpcThrough((s) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR))
    const r = await request(c, { ...GRPC, ':path': '/pkg.Svc/Get' }, grpcMessage('x'))
    expect([r.status, r.headers['grpc-status'], r.headers['x-remora-response-flags']]).toEqual([200, '14', 'UR'])
    expect(r.headers['grpc-message']).toBe('upstream reset the stream before the response: reset reason: remote reset (INTERNAL_ERROR)')
  })

  test('a plain HTTP/2 request (not gRPC) keeps the HTTP labels: request_protocol http, no grpc_response_status', async () => {
    const { c, scrape } = await grpcThrough((s) => {
      s.respond({ ':status': 200 })
      s.end('plain')
    })
    expect((await request(c, { ':path': '/plain' })).status).toBe(200)
    const f = await scrape()
    const s = samples(f, 'istio_requests_total', { request_protocol: 'http', response_code: '200' })
    expect(s.length).toBe(1)
    expect('grpc_response_status' in s[0]!.labels).toBe(false)
    expect(samples(f, 'istio_request_messages_total').length).toBe(0)
  })
})
