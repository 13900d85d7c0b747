import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { createTestPki } from '../helpers/pki.js'
import { mtlsRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { startJaegerCollector, type JaegerCollector } from '../helpers/jaeger-collector.js'

// The legacy path for Jaeger installs without OTLP: exporter "jaeger" sends Thrift over HTTP to the
// collector's /api/traces. What arrives is decoded and must be the sidecar's span.
let collector: JaegerCollector
let app: http.Server
let sc: TestSidecar
const pki = await createTestPki()

beforeAll(async () => {
  collector = await startJaegerCollector()
  app = http.createServer((_req, res) => res.end('ok'))
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  sc = await startSidecar({
    pki,
    serviceAccount: 'ledger',
    app: `127.0.0.1:${(app.address() as AddressInfo).port}`,
    extra: { telemetry: { tracing: { exporter: 'jaeger', endpoint: collector.endpoint, sampling: 1 }, metrics: { port: 0, bind: '127.0.0.1' } } },
  })
})

afterAll(async () => {
  await sc?.close()
  app?.close()
  await collector?.close()
})

test('exporter-jaeger: the server span arrives as Thrift with its ids, parent, service and remora tags', async () => {
  const tid = '7bf92f3577b34da6a3ce929d0e0e4736'
  const res = await mtlsRequest(sc.inbound, await pki.issue('spiffe://cluster.local/ns/shop/sa/orders'), pki.caPem, { path: '/ledger', headers: { traceparent: `00-${tid}-00f067aa0ba902b7-01` } })
  expect(res.refused === false && res.status).toBe(200)
  await sc.sidecar.flushTraces()
  await until(() => collector.spans.some((s) => s.traceId === tid), 10_000, 'a Jaeger span')
  const span = collector.spans.find((s) => s.traceId === tid)!
  expect(collector.contentTypes[0]).toBe('application/x-thrift')
  expect(span.parentSpanId).toBe('00f067aa0ba902b7')
  expect(span.spanId).toBe(sc.accessLog.find((l) => l.trace_id === tid)!.span_id)
  expect(span.operationName).toBe('GET')
  expect(span.serviceName).toBe('ledger')
  expect(span.tags['span.kind']).toBe('server')
  expect(span.tags['http.response.status_code']).toBe(200)
  expect(span.tags['remora.peer.principal']).toBe('spiffe://cluster.local/ns/shop/sa/orders')
  expect(span.tags['remora.response_flags']).toBe('-')
})
