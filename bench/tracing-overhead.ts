// What tracing adds to a request's latency through a sidecar pair, at a fixed 1,000 rps.
//   npx tsx bench/tracing-overhead.ts [--seconds 8] [--rounds 2] [--rps 1000]
// Topology (loopback): load ─plain─▶ [orders out] ─mTLS─▶ [payments in] ─▶ app. The pair runs in a
// child process, one per mode and round, modes interleaved and their order rotated each round so
// drift on a shared machine hits every mode alike. Spans go over OTLP/HTTP to a sink in this process that
// answers 200 and discards. The load is open-loop (a request every 1/rps s, not waiting for the
// previous one), timed with hrtime from write to last byte. Prints one JSON object.
import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

type Mode = 'off' | '1%' | '100%'
const SAMPLING: Record<Mode, number | null> = { off: null, '1%': 0.01, '100%': 1 }

async function serve(mode: Mode, sink: string): Promise<void> {
  const { createTestPki } = await import('../test/helpers/pki.js')
  const { startSidecar } = await import('../test/helpers/mesh.js')
  const { startUpstream } = await import('../test/helpers/upstream.js')
  const pki = await createTestPki()
  const app = await startUpstream((_req, res) => res.end('ok'))
  const sampling = SAMPLING[mode]
  const telemetry = { metrics: { port: 0, bind: '127.0.0.1' }, ...(sampling === null ? {} : { tracing: { endpoint: sink, sampling } }) }
  const payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address, extra: { telemetry } })
  const orders = await startSidecar({
    pki,
    serviceAccount: 'orders',
    app: '127.0.0.1:1',
    clusters: [{ name: 'payments.shop', hosts: ['payments.shop'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/payments'] }],
    extra: { telemetry },
  })
  // The test helper keeps access log lines in memory; drop them so memory stays flat.
  setInterval(() => {
    orders.accessLog.length = 0
    payments.accessLog.length = 0
  }, 1000).unref()
  process.stdout.write(JSON.stringify({ port: orders.outbound }) + '\n')
  // "cpu" on stdin → this process's CPU time so far (the pair's cost, whatever else the machine runs).
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (d: string) => {
    for (const _ of d.split('\n').filter((l) => l === 'cpu')) {
      const u = process.cpuUsage()
      process.stdout.write(JSON.stringify({ cpuUs: u.user + u.system }) + '\n')
    }
  })
  process.stdin.on('end', () => process.exit(0))
}

interface Stats {
  /** CPU of the sidecar pair per measured request, µs. */
  cpu_us_per_req?: number
  n: number
  errors: number
  p50: number
  p90: number
  p99: number
  mean: number
}

function stats(samples: number[], errors: number): Stats {
  const s = [...samples].sort((a, b) => a - b)
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN
  const r3 = (x: number): number => Math.round(x * 1000) / 1000
  return { n: s.length, errors, p50: r3(q(0.5)), p90: r3(q(0.9)), p99: r3(q(0.99)), mean: r3(s.reduce((a, b) => a + b, 0) / s.length) }
}

async function load(port: number, rps: number, seconds: number, warmupSeconds: number): Promise<Stats> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const lat: number[] = []
  let errors = 0
  const one = (record: boolean): Promise<void> =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint()
      const req = http.request({ host: '127.0.0.1', port, path: '/charge', headers: { host: 'payments.shop' }, agent }, (res) => {
        res.resume()
        res.on('end', () => {
          if (record) {
            if (res.statusCode === 200) lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
            else errors++
          }
          resolve()
        })
      })
      req.on('error', () => {
        if (record) errors++
        resolve()
      })
      req.end()
    })
  const run = async (secs: number, record: boolean): Promise<void> => {
    const total = Math.round(secs * rps)
    const start = performance.now()
    const inflight: Promise<void>[] = []
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rps
      const wait = due - performance.now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      inflight.push(one(record))
    }
    await Promise.all(inflight)
  }
  await run(warmupSeconds, false)
  await run(seconds, true)
  agent.destroy()
  return stats(lat, errors)
}

/**
 * The stages alone, in this process, against a fake request: µs per request for `metrics`, and for
 * `trace` unsampled (the caller said 00), sampled (span recorded and queued; the export itself
 * happens later, in batches) and 1 % with no parent. Robust where the end-to-end figures are noisy.
 */
async function stageCosts(): Promise<Record<string, number>> {
  const { createMetricsStage, createTraceStage } = await import('../proxy/stages/index.js')
  const { SidecarMetrics, createTracing, resolveTracingSettings } = await import('../proxy/telemetry/index.js')
  const { InMemorySpanExporter } = await import('@opentelemetry/sdk-trace-base')
  type Ctx = Parameters<ReturnType<ReturnType<typeof createMetricsStage>>>[0]
  const peer = { uri: 'spiffe://cluster.local/ns/shop/sa/orders', namespace: 'shop', serviceAccount: 'orders', trustDomain: 'cluster.local', path: '/ns/shop/sa/orders', certHash: 'x' }
  const ctx = (traceparent: string | null): Ctx =>
    ({
      direction: 'inbound', req: { headers: traceparent ? { traceparent } : {}, httpVersion: '1.1' }, res: { statusCode: 200, headersSent: true }, startTime: 0, startMono: performance.now(),
      method: 'GET', target: '/x', authority: 'payments.shop', host: 'payments.shop', hostPort: null, path: '/x', query: '', requestId: 'r', headers: {}, peer, connectionSecurity: 'mutual_tls',
      sourceIp: '127.0.0.1', sourcePort: 1, localPort: 2, upgradeSocket: null, route: null, flags: [], errorCode: null, errorDetail: null, cluster: 'inbound|8080||', upstreamHost: '127.0.0.1:8080',
      decision: null, auth: null, bytesReceived: 0, bytesSent: 2, upstreamMs: 0.3, traceId: null, spanId: null, traceLink: null, traceHeaders: null,
    }) as unknown as Ctx
  const noop = async (_c?: Ctx): Promise<void> => {}
  const time = async (h: (c: Ctx) => Promise<void>, tp: string | null, n: number): Promise<number> => {
    for (let i = 0; i < 20_000; i++) await h(ctx(tp))
    const b0 = performance.now()
    for (let i = 0; i < n; i++) await noop(ctx(tp))
    const base = performance.now() - b0
    const t0 = performance.now()
    for (let i = 0; i < n; i++) await h(ctx(tp))
    return Math.round((((performance.now() - t0 - base) / n) * 1000) * 100) / 100
  }
  const self = { workload: 'payments', namespace: 'shop', principal: 'spiffe://cluster.local/ns/shop/sa/payments', app: 'payments', service: 'payments.shop.svc.cluster.local', serviceName: 'payments' }
  const out: Record<string, number> = {}
  out.metrics_stage_us = await time(createMetricsStage({ metrics: new SidecarMetrics({ processMetrics: false }), direction: 'inbound', self })(noop), null, 200_000)
  const traceStage = async (ratio: number) => {
    const exporter = new InMemorySpanExporter()
    setInterval(() => exporter.reset(), 50).unref()
    const tracing = (await createTracing(resolveTracingSettings({ maxQueueSize: 100_000, endpoint: 'http://127.0.0.1:9/', sampling: ratio }), { workload: 'payments', namespace: 'shop' }, {}, { exporter }))!
    return createTraceStage({ tracing, direction: 'inbound', jaegerUi: null })(noop)
  }
  const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7'
  out.trace_stage_unsampled_parent_us = await time(await traceStage(1), `${TP}-00`, 100_000)
  out.trace_stage_sampled_us = await time(await traceStage(1), `${TP}-01`, 100_000)
  out.trace_stage_1pct_no_parent_us = await time(await traceStage(0.01), null, 100_000)
  return out
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'stages-only': { type: 'boolean' }, serve: { type: 'string' }, sink: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, rps: { type: 'string' } } })
  if (values.serve) return serve(values.serve as Mode, values.sink ?? '')
  if (values['stages-only']) {
    console.log(JSON.stringify({ bench: 'tracing-overhead', stage_cpu: await stageCosts() }, null, 2))
    return
  }
  const seconds = Number(values.seconds ?? 8)
  const rounds = Number(values.rounds ?? 2)
  const rps = Number(values.rps ?? 1000)
  let spans = 0
  const sink = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      spans++
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
    })
  })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
  const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`
  const self = fileURLToPath(import.meta.url)
  const results: Record<Mode, Stats[]> = { off: [], '1%': [], '100%': [] }
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so slow drift on a shared machine does not favour one mode.
    const order: Mode[] = ['off', '1%', '100%']
    for (const mode of [...order.slice(round % 3), ...order.slice(0, round % 3)]) {
      const child = spawn(process.execPath, ['--import', 'tsx', self, '--serve', mode, '--sink', sinkUrl], { stdio: ['pipe', 'pipe', 'inherit'] })
      const lines: string[] = []
      const waiters: ((l: string) => void)[] = []
      let buf = ''
      child.stdout.on('data', (c: Buffer) => {
        buf += c.toString()
        let i: number
        while ((i = buf.indexOf('\n')) >= 0) {
          const l = buf.slice(0, i)
          buf = buf.slice(i + 1)
          const w = waiters.shift()
          if (w) w(l)
          else lines.push(l)
        }
      })
      const nextLine = (): Promise<string> => new Promise((r) => (lines.length ? r(lines.shift()!) : waiters.push(r)))
      const port = (JSON.parse(await nextLine()) as { port: number }).port
      const cpu = async (): Promise<number> => {
        child.stdin.write('cpu\n')
        return (JSON.parse(await nextLine()) as { cpuUs: number }).cpuUs
      }
      await load(port, rps, 1, 0) // warm-up (pools, JIT)
      const c0 = await cpu()
      const st = await load(port, rps, seconds, 0)
      st.cpu_us_per_req = Math.round((await cpu()) - c0) / st.n
      st.cpu_us_per_req = Math.round(st.cpu_us_per_req * 10) / 10
      results[mode].push(st)
      const exited = new Promise((r) => child.once('exit', r))
      child.stdin.end()
      await exited
    }
  }
  sink.close()
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const summary = Object.fromEntries(
    (Object.keys(results) as Mode[]).map((m) => [
      m,
      { p50_ms: median(results[m].map((s) => s.p50)), p99_ms: median(results[m].map((s) => s.p99)), cpu_us_per_req: median(results[m].map((s) => s.cpu_us_per_req!)), errors: results[m].reduce((a, s) => a + s.errors, 0) },
    ]),
  ) as Record<Mode, { p50_ms: number; p99_ms: number; cpu_us_per_req: number; errors: number }>
  const r3 = (x: number): number => Math.round(x * 1000) / 1000
  const added = (m: Mode) => ({
    p50_ms: r3(summary[m].p50_ms - summary.off.p50_ms),
    p99_ms: r3(summary[m].p99_ms - summary.off.p99_ms),
    p50_pct: Math.round(((summary[m].p50_ms - summary.off.p50_ms) / summary.off.p50_ms) * 1000) / 10,
    cpu_us_per_req: Math.round((summary[m].cpu_us_per_req - summary.off.cpu_us_per_req) * 10) / 10,
  })
  console.log(
    JSON.stringify(
      {
        bench: 'tracing-overhead',
        topology: 'load → [orders out] → mTLS → [payments in] → app (loopback, pair in a child process)',
        rps,
        seconds,
        rounds,
        node: process.version,
        loadavg: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100),
        latency: summary,
        added_vs_off: { '1%': added('1%'), '100%': added('100%') },
        otlp_exports_received: spans,
        stage_cpu: await stageCosts(),
        rounds_detail: results,
      },
      null,
      2,
    ),
  )
}

await main()
