import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { createTestPki } from '../helpers/pki.js'
import { plainRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { freePort, startUpstream, type Upstream } from '../helpers/upstream.js'

// Debian's real Prometheus scrapes two sidecars' :15090/stats/prometheus (Istio's scrape path) and
// its HTTP API must return istio_requests_total with Istio's labels and the counts of known traffic.
// A missing binary fails with the install line: a system test never skips.
const INSTALL = 'prometheus is not installed: apt-get update && apt-get install -y prometheus (listed in .ci/packages.txt)'
const POLICY = `
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }], to: [{ operation: { paths: ["/charge"] } }] }]
`

let app: Upstream
let payments: TestSidecar
let orders: TestSidecar
let prom: ChildProcess | null = null
let promPort = 0
let dir = ''
let promLog = ''

function prometheusBinary(): string {
  const r = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' })
  const bin = r.stdout.trim()
  if (r.status !== 0 || !bin) throw new Error(INSTALL)
  return bin
}

interface Series {
  metric: Record<string, string>
  value: [number, string]
}

async function query(q: string): Promise<Series[]> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`)
  const body = (await res.json()) as { status: string; data: { result: Series[] } }
  if (body.status !== 'success') throw new Error(`query failed: ${JSON.stringify(body)}`)
  return body.data.result
}

/** Polls the HTTP API until `pred` holds for the result (Prometheus scrapes every second). */
async function until(q: string, pred: (r: Series[]) => boolean, timeoutMs = 30_000): Promise<Series[]> {
  const end = Date.now() + timeoutMs
  let last: Series[] = []
  while (Date.now() < end) {
    last = await query(q).catch(() => [])
    if (pred(last)) return last
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`Prometheus never answered ${q} as expected; last: ${JSON.stringify(last)}\n${promLog.slice(-2000)}`)
}

beforeAll(async () => {
  const bin = prometheusBinary()
  const pki = await createTestPki()
  app = await startUpstream((_req, res) => res.end('ok'))
  payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address, policies: POLICY })
  orders = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: '127.0.0.1:1',
    clusters: [{ name: 'payments.shop', hosts: ['payments.shop', 'payments.shop.svc.cluster.local'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/payments'] }],
  })
  for (let i = 0; i < 5; i++) expect((await plainRequest(orders.outbound, { path: '/charge', headers: { host: 'payments.shop' } })).status).toBe(200)
  for (let i = 0; i < 2; i++) expect((await plainRequest(orders.outbound, { path: '/admin', headers: { host: 'payments.shop' } })).status).toBe(403)

  dir = await mkdtemp(join(tmpdir(), 'remora-prom-'))
  const targets = [payments, orders].map((s) => `'127.0.0.1:${s.sidecar.ports.metrics}'`).join(', ')
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: remora-sidecars
    metrics_path: /stats/prometheus
    static_configs: [{ targets: [${targets}] }]
`,
  )
  promPort = await freePort()
  prom = spawn(bin, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] })
  prom.stdout?.on('data', (c: Buffer) => (promLog += c.toString()))
  prom.stderr?.on('data', (c: Buffer) => (promLog += c.toString()))
  const end = Date.now() + 30_000
  while (!(await fetch(`http://127.0.0.1:${promPort}/-/ready`).then((r) => r.ok, () => false))) {
    if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}: ${promLog.slice(-2000)}`)
    if (Date.now() > end) throw new Error(`prometheus not ready after 30 s: ${promLog.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 200))
  }
})

afterAll(async () => {
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r))
    prom.kill('SIGTERM')
    await exited
  }
  await orders?.close()
  await payments?.close()
  await app?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

test('both sidecars are scraped targets, up', async () => {
  const up = await until('up{job="remora-sidecars"}', (r) => r.length === 2 && r.every((s) => s.value[1] === '1'))
  expect(up).toHaveLength(2)
})

test('istio_requests_total from the destination sidecar: Istio labels, 5 allowed and 2 denied with AZ', async () => {
  const ok = await until('istio_requests_total{reporter="destination",response_code="200"}', (r) => r[0]?.value[1] === '5')
  expect(ok).toHaveLength(1)
  expect(ok[0]!.metric).toMatchObject({
    source_workload: 'orders',
    source_workload_namespace: 'shop',
    source_principal: 'spiffe://cluster.local/ns/shop/sa/orders',
    destination_workload: 'payments',
    destination_workload_namespace: 'shop',
    destination_principal: 'spiffe://cluster.local/ns/shop/sa/payments',
    destination_service: 'payments.shop.svc.cluster.local',
    destination_service_name: 'payments',
    request_protocol: 'http',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
  })
  const denied = await until('istio_requests_total{reporter="destination",response_code="403",response_flags="AZ"}', (r) => r[0]?.value[1] === '2')
  expect(denied[0]!.metric.source_workload).toBe('orders')
})

test('the source sidecar reports the same calls, and PromQL aggregates them as dashboards do', async () => {
  const bySource = await until('sum by (destination_service, response_code) (istio_requests_total{reporter="source",source_workload="orders"})', (r) => r.length === 2)
  const counts = Object.fromEntries(bySource.map((s) => [`${s.metric.destination_service} ${s.metric.response_code}`, s.value[1]]))
  expect(counts).toEqual({ 'payments.shop.svc.cluster.local 200': '5', 'payments.shop.svc.cluster.local 403': '2' })
  const hist = await until('sum(istio_request_duration_milliseconds_count{reporter="destination"})', (r) => r[0]?.value[1] === '7')
  expect(hist[0]!.value[1]).toBe('7')
  const authz = await until('remora_authz_decisions_total{action="ALLOW",policy="shop/payments-allow-orders",mode="enforce"}', (r) => r[0]?.value[1] === '5')
  expect(authz).toHaveLength(1)
})
