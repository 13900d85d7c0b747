// What tracing adds to a request's latency through a sidecar pair, at a fixed 1,000 rps.
//   npx tsx bench/tracing-overhead.ts [--seconds 2] [--rounds 10] [--rps 1000] [--stages-only]
// Topology (loopback): load ─plain─▶ [orders out] ─mTLS─▶ [payments in] ─▶ app, one pair per
// variant, every pair in the same child process (bench/lib/ab-latency.ts: same-process A/B,
// requests interleaved or slices in rotated order; --rps is per variant). Variants: tracing off; 1 % and 100 % sampling exporting over
// OTLP/HTTP to a sink in this process that answers 200 and discards; and 100 % with the collector
// down (connection refused) or slow (holds every export 10 s): exports fail or time out, spans are
// dropped and counted, requests must not notice. Prints one JSON object.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { added, runAb, serveAb, type AbStats } from './lib/ab-latency.js'

const pick = (s: AbStats) => ({ p50_ms: s.p50_ms, p99_ms: s.p99_ms, cpu_us_per_req: s.cpu_us_per_req, errors: s.errors, n: s.n })

const VARIANTS = ['off', '1%', '100%', '100% collector ok', '100% collector down', '100% collector slow'] as const
type Variant = (typeof VARIANTS)[number]

async function serve(sinks: { ok: string; slow: string }, variants: readonly Variant[]): Promise<void> {
  const { createTestPki } = await import('../test/helpers/pki.js')
  const { startSidecar } = await import('../test/helpers/mesh.js')
  const { startUpstream } = await import('../test/helpers/upstream.js')
  const pki = await createTestPki()
  const app = await startUpstream((_req, res) => res.end('ok'))
  const tracingOf: Record<Variant, { endpoint: string; sampling: number } | null> = {
    off: null,
    '1%': { endpoint: sinks.ok, sampling: 0.01 },
    '100%': { endpoint: sinks.ok, sampling: 1 },
    '100% collector ok': { endpoint: sinks.ok, sampling: 1 },
    '100% collector down': { endpoint: 'http://127.0.0.1:1', sampling: 1 },
    '100% collector slow': { endpoint: sinks.slow, sampling: 1 },
  }
  const ports: Record<string, number> = {}
  const all: { accessLog: unknown[] }[] = []
  for (const v of variants) {
    const t = tracingOf[v]
    const telemetry = { metrics: { port: 0, bind: '127.0.0.1' }, ...(t === null ? {} : { tracing: t }) }
    const payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address, extra: { telemetry } })
    const orders = await startSidecar({
      pki,
      serviceAccount: 'orders',
      app: '127.0.0.1:1',
      clusters: [{ name: 'payments.shop', hosts: ['payments.shop'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/payments'] }],
      extra: { telemetry },
    })
    all.push(orders, payments)
    ports[v] = orders.outbound
  }
  // The test helper keeps access log lines in memory; drop them so memory stays flat.
  setInterval(() => {
    for (const s of all) s.accessLog.length = 0
  }, 1000).unref()
  serveAb(ports)
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
  const { values } = parseArgs({ options: { 'stages-only': { type: 'boolean' }, serve: { type: 'boolean' }, sink: { type: 'string' }, 'slow-sink': { type: 'string' }, variants: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, rps: { type: 'string' } } })
  if (values.serve) return serve({ ok: values.sink!, slow: values['slow-sink']! }, values.variants!.split(',') as Variant[])
  if (values['stages-only']) {
    console.log(JSON.stringify({ bench: 'tracing-overhead', stage_cpu: await stageCosts() }, null, 2))
    return
  }
  // `npm run bench -- --quick` (BENCH_QUICK=1): a smoke run of the harness, not numbers to quote.
  const quick = process.env.BENCH_QUICK === '1'
  const seconds = Number(values.seconds ?? (quick ? 1 : 2))
  const rounds = Number(values.rounds ?? (quick ? 2 : 10))
  const rps = Number(values.rps ?? 1000)
  let exports = 0
  const sink = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      exports++
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
    })
  })
  const held = new Set<http.ServerResponse>()
  const slow = http.createServer((req, res) => {
    req.resume()
    held.add(res)
    setTimeout(() => {
      held.delete(res)
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
    }, 10_000).unref()
  })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r))
  const url = (s: http.Server): string => `http://127.0.0.1:${(s.address() as AddressInfo).port}`
  const loadBefore = (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100)
  // Three runs, each its own child process. 1) The target's comparison: off and 1 % at 1,000 rps
  // each, request by request in turn, so both see the machine in the same state (the precise way to
  // compare a per-request cost; at 1 % the export is 20 spans a second). 2) Off, 1 % and 100 % each
  // alone in its slices: the CPU each costs, and 100 %'s export work lands in its own slices.
  // 3) A dead and a slow collector against a healthy one, kept apart because a failing exporter's
  // retries and timeouts go on for seconds after its slice.
  const only = (variants: Variant[], n = rounds) => ({ variants, rounds: n, serveArgs: [...common.serveArgs, '--variants', variants.join(',')], gapMs: 1500 })
  const common = { script: fileURLToPath(import.meta.url), serveArgs: ['--sink', url(sink), '--slow-sink', url(slow)], rps, sliceSeconds: seconds, rounds, request: () => ({ path: '/charge', headers: { host: 'payments.shop' } }) }
  const ab = await runAb({ ...common, ...only(['off', '1%']), interleave: true })
  const r = {
    ...(await runAb({ ...common, ...only(['off', '1%', '100%'], Math.max(2, Math.ceil(rounds / 2))) })),
    ...(await runAb({ ...common, ...only(['100% collector ok', '100% collector down', '100% collector slow'], Math.max(2, Math.ceil(rounds / 2))) })),
  }
  for (const res of held) res.destroy()
  sink.close()
  slow.close()
  slow.closeAllConnections()
  const off = r.off!
  const target = added(ab.off!, ab['1%']!)
  console.log(
    JSON.stringify(
      {
        bench: 'tracing-overhead',
        topology: 'load → [orders out] → mTLS → [payments in] → app (loopback; every variant a pair in one child process)',
        rps_per_variant: rps,
        slice_seconds: seconds,
        rounds,
        node: process.version,
        loadavg: { before: loadBefore, after: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100) },
        interleaved: { what: 'off and 1 %, request by request, 1,000 rps each', latency: { off: pick(ab.off!), '1%': pick(ab['1%']!) }, added: target },
        latency: Object.fromEntries(VARIANTS.map((v) => [v, pick(r[v]!)])),
        added_vs_off: { '1%': added(off, r['1%']!), '100%': added(off, r['100%']!) },
        collector_failure_vs_healthy: { down: added(r['100% collector ok']!, r['100% collector down']!), slow: added(r['100% collector ok']!, r['100% collector slow']!) },
        target: { what: 'added p50 at 1 % sampling < 5 % (interleaved, paired by round)', p50_pct: target.p50_paired_pct, met: target.p50_paired_pct < 5 },
        otlp_exports_received: exports,
        stage_cpu: await stageCosts(),
        detail: { interleaved: ab, slices: r },
      },
      null,
      2,
    ),
  )
}

await main()
