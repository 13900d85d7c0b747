import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { createTestPki } from '../helpers/pki.js'
import { plainRequest } from '../helpers/mesh.js'
import { metricValue, scrape } from '../helpers/metrics.js'
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { runRemora, type Child } from '../helpers/process.js'
import { freePort, startUpstream, type Upstream } from '../helpers/upstream.js'

// `remora proxy` as a process: main.ts reads OTEL_* from the environment, a flag wins over the
// variable, the scrape port and the text access log to a file follow their flags.
let dir: string
let app: Upstream
let receiver: OtlpReceiver
const children: Child[] = []

beforeAll(async () => {
  const pki = await createTestPki()
  dir = await mkdtemp(join(tmpdir(), 'remora-tele-cli-'))
  await pki.writeFiles(dir, 'orders', await pki.issue('spiffe://cluster.local/ns/shop/sa/orders'))
  app = await startUpstream((_req, res) => res.end('ok'))
  receiver = await startOtlpReceiver()
})

afterAll(async () => {
  for (const c of children) await c.stop()
  await app?.close()
  await receiver?.close()
})

async function startProxy(flags: string[], env: NodeJS.ProcessEnv): Promise<{ inbound: number; admin: number; metrics: number; child: Child }> {
  const ports = { inbound: await freePort(), outbound: await freePort(), admin: await freePort(), metrics: await freePort() }
  const file = join(dir, `c-${ports.inbound}.yaml`)
  await writeFile(
    file,
    `apiVersion: remora.dev/v1
kind: SidecarConfig
workload: { namespace: shop, serviceAccount: orders, labels: { app: orders } }
identity: { certFile: orders.pem, keyFile: orders-key.pem, caFile: ca.pem }
inbound: { port: ${ports.inbound}, bind: 127.0.0.1, app: "${app.address}" }
outbound: { port: ${ports.outbound} }
admin: { port: ${ports.admin} }
telemetry: { metrics: { bind: 127.0.0.1 } }
`,
  )
  const child = runRemora(['proxy', '--config', file, '--metrics-port', String(ports.metrics), ...flags], { env: { OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_PROPAGATORS: '', ...env } })
  children.push(child)
  await child.waitForLine((l) => l.event === 'sidecar_started')
  return { ...ports, child }
}

test('OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_PROPAGATORS from the environment are honoured', async () => {
  const p = await startProxy([], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_PROPAGATORS: 'b3' })
  const tid = '9bf92f3577b34da6a3ce929d0e0e4736'
  expect((await plainRequest(p.inbound, { headers: { host: 'orders.shop', b3: `${tid}-00f067aa0ba902b7-1` } })).status).toBe(200)
  const [s] = await receiver.waitForSpans(1, (x) => x.traceId === tid, 15_000)
  expect(s!.parentSpanId).toBe('00f067aa0ba902b7')
  expect(s!.resource['service.name']).toBe('orders')
})

test('a flag wins over the variable: --trace-propagators tracecontext ignores b3; --trace-sampling 0 records nothing new', async () => {
  const p = await startProxy(['--trace-propagators', 'tracecontext', '--trace-sampling', '0', '--access-log-format', 'text', '--access-log-path', join(dir, 'access.log')], {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_PROPAGATORS: 'b3',
    OTEL_TRACES_SAMPLER: 'always_on',
  })
  const b3Trace = 'abf92f3577b34da6a3ce929d0e0e4736'
  const w3cTrace = 'bbf92f3577b34da6a3ce929d0e0e4736'
  expect((await plainRequest(p.inbound, { headers: { host: 'orders.shop', b3: `${b3Trace}-00f067aa0ba902b7-1` } })).status).toBe(200)
  // A sampled W3C parent is still honoured at ratio 0 (parent-based): that span must arrive.
  expect((await plainRequest(p.inbound, { headers: { host: 'orders.shop', traceparent: `00-${w3cTrace}-00f067aa0ba902b7-01` } })).status).toBe(200)
  await receiver.waitForSpans(1, (x) => x.traceId === w3cTrace, 15_000)
  expect(receiver.spans.filter((x) => x.traceId === b3Trace)).toEqual([])
  // The scrape port from --metrics-port, and the text access log in the file from --access-log-path.
  const { families } = await scrape(p.metrics, '/stats/prometheus')
  expect(metricValue(families, 'istio_requests_total', { reporter: 'destination', response_code: '200' })).toBe(2)
  expect(await p.child.stop()).toBe(0)
  const log = await readFile(join(dir, 'access.log'), 'utf8')
  expect(log).toMatch(new RegExp(`^\\[[^\\]]+\\] "GET / HTTP/1.1" 200 - .* ${w3cTrace}$`, 'm'))
})
