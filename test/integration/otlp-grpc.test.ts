import http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { createTestPki } from '../helpers/pki.js'
import { plainRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { decodeOtlpTraces, type ReceivedSpan } from '../helpers/otlp-receiver.js'

// exporter "otlp-grpc": a real gRPC server (grpc-js, plaintext on loopback) implements the OTLP
// TraceService/Export method over raw bytes; the request bodies are decoded like OTLP/HTTP ones.
const spans: ReceivedSpan[] = []
let server: grpc.Server
let app: http.Server
let sc: TestSidecar

beforeAll(async () => {
  server = new grpc.Server()
  const raw = (b: Buffer): Buffer => b
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        spans.push(...decodeOtlpTraces(call.request))
        cb(null, Buffer.alloc(0)) // an empty ExportTraceServiceResponse
      },
    },
  )
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
  app = http.createServer((_req, res) => res.end('ok'))
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  sc = await startSidecar({
    pki: await createTestPki(),
    serviceAccount: 'grpcer',
    app: `127.0.0.1:${(app.address() as AddressInfo).port}`,
    extra: { telemetry: { tracing: { exporter: 'otlp-grpc', endpoint: `http://127.0.0.1:${port}`, sampling: 1 }, metrics: { port: 0, bind: '127.0.0.1' } } },
  })
})

afterAll(async () => {
  await sc?.close()
  app?.close()
  server?.forceShutdown()
})

test('OTLP over gRPC: the server span arrives, decoded from the Export request', async () => {
  const tid = '8bf92f3577b34da6a3ce929d0e0e4736'
  expect((await plainRequest(sc.inbound, { headers: { host: 'grpcer.shop', traceparent: `00-${tid}-00f067aa0ba902b7-01` } })).status).toBe(200)
  await sc.sidecar.flushTraces()
  await until(() => spans.some((s) => s.traceId === tid), 10_000, 'a span over gRPC')
  const s = spans.find((x) => x.traceId === tid)!
  expect(s).toMatchObject({ parentSpanId: '00f067aa0ba902b7', kind: 'SERVER', name: 'GET' })
  expect(s.resource['service.name']).toBe('grpcer')
})
