// Soak: a steady paced load through a sidecar pair with everything on (authorization evaluated on
// every request, metrics scraped, the access log written, 1 % tracing to an OTLP receiver), RSS of
// the two sidecar processes sampled from /proc, and a verdict that it is flat after warm-up.
//
//   autocannon (paced, keep-alive) → orders (remora proxy, outbound) ─mTLS→ payments (remora proxy, inbound, ALLOW) → app
//
// The sidecars are `node dist/cli/main.js proxy` processes (built code, as production runs it; tsx's
// loader would add its own memory). The app, the receiver and the load generator share the test
// process, so the generator's CPU is measured against the sidecars' and the achieved rate reported.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { budget, MODE, recordFigures } from '../budget.js'
import { plainRequest } from '../../helpers/mesh.js'
import { metricValue, scrape } from '../../helpers/metrics.js'
import { startOtlpReceiver, type OtlpReceiver } from '../../helpers/otlp-receiver.js'
import { createTestPki } from '../../helpers/pki.js'
import { runRemora, type Child } from '../../helpers/process.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { rmDir } from '../../helpers/control-plane.js'

/** REMORA_SOAK_SECONDS overrides the length (a longer look at a suspected leak without the full form). */
const DURATION_S = Number(process.env.REMORA_SOAK_SECONDS) || budget(60, 600)
const RATE = 1000
const CONNECTIONS = 8
/**
 * RSS before this is warm-up (JIT, pools, TLS sessions, heap sizing) and not part of the fit. The
 * full form waits out V8's first old-space tooth (its first major collection came at ≈ 110 s in the
 * 10 min run of 2026-12-03, with RSS dropping 30 MB): a fit starting before it measures the drop.
 */
const WARMUP_S = budget(20, 120)
/**
 * The bound on the least-squares RSS slope after warm-up, per sidecar. V8 grows old space in a
 * sawtooth (here ≈ 35 MB rising ≈ 20 MB/min, a major GC every ≈ 100 s at 1,000 rps): over 9 min
 * the fit averages several teeth (a flat sawtooth's slope < 0.3 MB/min at any phase), so the full
 * form states flat as |slope| < 1 MB/min. A 40 s window can sit on one rising edge, so the bounded
 * form only bounds growth, at 30 MB/min: a leak of ≥ 0.5 KB a request still fails it.
 */
const SLOPE_LIMIT_MB_PER_MIN = budget(30, 1)
const TABLE_EVERY_S = 10
/** Denser samples feed the fit (a 40 s window of 10 s samples is too few points to be stable). */
const FIT_EVERY_S = 2
const MB = 1024 * 1024

// autocannon ships no types: the part of its API used here.
interface AutocannonResult {
  requests: { total: number }
  latency: { p50: number; p99: number; max: number }
  duration: number
  non2xx: number
  errors: number
  timeouts: number
}
const autocannon = createRequire(import.meta.url)('autocannon') as (o: {
  url: string
  requests: { method: string; path: string; headers: Record<string, string> }[]
  connections: number
  overallRate: number
  duration: number
  timeout: number
}) => Promise<AutocannonResult>

let dir = ''
let app: Upstream
let receiver: OtlpReceiver
let orders: Child | null = null
let payments: Child | null = null
const ports = { ordersOutbound: 0, ordersAdmin: 0, paymentsAdmin: 0 }

interface Sample {
  t: number // seconds since load start
  orders: number // bytes
  payments: number
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my)
    den += (xs[i]! - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

const countLines = async (file: string): Promise<number> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l.startsWith('{')).length

const cpuSeconds = async (pid: number): Promise<number> => {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / 100 // utime + stime, in clock ticks of 1/100 s
}

beforeAll(async () => {
  const pki = await createTestPki()
  dir = await mkdtemp(join(tmpdir(), 'remora-soak-'))
  app = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'text/plain')
    res.end('ok')
  })
  receiver = await startOtlpReceiver()
  for (const sa of ['orders', 'payments']) await pki.writeFiles(dir, sa, await pki.issue(`spiffe://cluster.local/ns/shop/sa/${sa}`))
  await writeFile(
    join(dir, 'payments-policy.yaml'),
    `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/soak/*"] } }]
`,
  )
  const config = (sa: string, extra: string): string => `apiVersion: remora.dev/v1
kind: SidecarConfig
workload: { namespace: shop, serviceAccount: ${sa}, labels: { app: ${sa} } }
identity: { certFile: ${sa}.pem, keyFile: ${sa}-key.pem, caFile: ca.pem }
inbound: { port: 0, bind: 127.0.0.1, app: "${sa === 'payments' ? app.address : '127.0.0.1:9'}" }
outbound: { port: 0 }
admin: { port: 0 }
accessLog: { enabled: true, path: ${sa}-access.log }
telemetry:
  tracing: { exporter: otlp, endpoint: "${receiver.url}", sampling: 0.01 }
  metrics: { port: 0, bind: 127.0.0.1 }
${extra}`
  await writeFile(join(dir, 'payments.yaml'), config('payments', 'policies: { files: [payments-policy.yaml] }\n'))
  payments = runRemora(['proxy', '--config', join(dir, 'payments.yaml')], { cwd: dir, built: true })
  const p = (await payments.waitForLine((o) => o.event === 'sidecar_started')) as { ports: { inbound: number; admin: number } }
  ports.paymentsAdmin = p.ports.admin
  await writeFile(
    join(dir, 'orders.yaml'),
    config('orders', `clusters: [{ name: payments.shop, hosts: [payments.shop], endpoints: ["127.0.0.1:${p.ports.inbound}"], identities: ["spiffe://cluster.local/ns/shop/sa/payments"] }]\n`),
  )
  orders = runRemora(['proxy', '--config', join(dir, 'orders.yaml')], { cwd: dir, built: true })
  const o = (await orders.waitForLine((x) => x.event === 'sidecar_started')) as { ports: { outbound: number; admin: number } }
  ports.ordersOutbound = o.ports.outbound
  ports.ordersAdmin = o.ports.admin
  // The path is wired and authorized (allow), and the policy is really evaluated (its deny twin).
  const ok = await plainRequest(ports.ordersOutbound, { path: '/soak/x', headers: { host: 'payments.shop' } })
  expect(ok.status).toBe(200)
  const denied = await plainRequest(ports.ordersOutbound, { path: '/other', headers: { host: 'payments.shop' } })
  expect(denied.status).toBe(403)
}, 60_000)

afterAll(async () => {
  for (const c of [orders, payments]) {
    if (!c) continue
    if ((await Promise.race([c.stop(), new Promise((r) => setTimeout(() => r('timeout'), 5000))])) === 'timeout') c.proc.kill('SIGKILL')
  }
  await app?.close()
  await receiver?.close()
  if (dir) await rmDir(dir)
})

describe(`soak: ${DURATION_S} s at ${RATE} rps through a sidecar pair with authz, metrics, access log and 1 % tracing (${MODE})`, () => {
  test('zero errors, RSS flat after warm-up', async () => {
    const sidecars = { orders: orders!, payments: payments! }
    const samples: Sample[] = []
    const scrapes: { t: number; orders: number; payments: number; heapOrders: number; heapPayments: number; extOrders: number; extPayments: number }[] = []
    const hitsBefore = app.hits
    const denyBefore = metricValue((await scrape(ports.paymentsAdmin)).families, 'remora_authz_decisions_total', { action: 'DENY' })
    const cpu0 = { orders: await cpuSeconds(orders!.pid), payments: await cpuSeconds(payments!.pid), self: process.cpuUsage() }
    const t0 = Date.now()
    const sample = (): void => {
      samples.push({ t: (Date.now() - t0) / 1000, orders: sidecars.orders.rssBytes(), payments: sidecars.payments.rssBytes() })
    }
    sample()
    const rssTimer = setInterval(sample, FIT_EVERY_S * 1000)
    let scrapeErrors = 0
    const scrapeTimer = setInterval(() => {
      const t = (Date.now() - t0) / 1000
      void Promise.all([scrape(ports.ordersAdmin), scrape(ports.paymentsAdmin)]).then(
        ([a, b]) =>
          scrapes.push({ t, orders: metricValue(a.families, 'istio_requests_total'), payments: metricValue(b.families, 'istio_requests_total'), heapOrders: metricValue(a.families, 'nodejs_heap_size_used_bytes'), heapPayments: metricValue(b.families, 'nodejs_heap_size_used_bytes'), extOrders: metricValue(a.families, 'nodejs_external_memory_bytes'), extPayments: metricValue(b.families, 'nodejs_external_memory_bytes') }),
        () => scrapeErrors++,
      )
    }, 10_000)
    // Open loop at a fixed overall rate over a handful of keep-alive connections.
    const result = await autocannon({
      url: `http://127.0.0.1:${ports.ordersOutbound}`,
      requests: [{ method: 'GET', path: '/soak/item', headers: { host: 'payments.shop' } }],
      connections: CONNECTIONS,
      overallRate: RATE,
      duration: DURATION_S,
      timeout: 10,
    })
    sample()
    clearInterval(rssTimer)
    clearInterval(scrapeTimer)
    const elapsed = (Date.now() - t0) / 1000
    const cpu = {
      orders: (await cpuSeconds(orders!.pid)) - cpu0.orders,
      payments: (await cpuSeconds(payments!.pid)) - cpu0.payments,
      self: (() => {
        const u = process.cpuUsage(cpu0.self)
        return (u.user + u.system) / 1e6
      })(),
    }

    // Every request answered 200 by the app: no non-2xx, no transport error, no timeout.
    // autocannon counts answered requests; the few in flight when it stops (≤ one per connection)
    // were served but their answers not awaited (its own `sent` counts pacing ticks, not writes):
    // the app, the metrics and the logs of both sidecars must all see the same `sent`.
    const total = result.requests.total
    const appHits = app.hits - hitsBefore
    const sent = appHits
    const non2xx = result.non2xx
    const achieved = total / result.duration
    // Telemetry caught up: every request logged once by each sidecar, spans exported.
    const expectedLog = sent + 2 // + the two warm-up requests of beforeAll
    const end = Date.now() + 20_000
    let logs = { orders: 0, payments: 0 }
    for (;;) {
      logs = { orders: await countLines(join(dir, 'orders-access.log')), payments: await countLines(join(dir, 'payments-access.log')) }
      if ((logs.orders >= expectedLog && logs.payments >= expectedLog) || Date.now() > end) break
      await new Promise((r) => setTimeout(r, 200))
    }
    const finalMetrics = (await scrape(ports.paymentsAdmin)).families
    const allows = metricValue(finalMetrics, 'remora_authz_decisions_total', { action: 'ALLOW' })
    const denies = metricValue(finalMetrics, 'remora_authz_decisions_total', { action: 'DENY' }) - denyBefore
    const served200 = metricValue(finalMetrics, 'istio_requests_total', { response_code: '200' })
    // Roughly 1 % of traces sampled, one span per sidecar each; let the batch exporters flush.
    await receiver.waitForSpans(Math.floor(total * 0.005), () => true, 20_000).catch(() => [])
    const spans = receiver.spans.length

    // RSS verdict.
    const fitted = samples.filter((s) => s.t >= WARMUP_S)
    const slopes = {
      orders: slope(fitted.map((s) => s.t / 60), fitted.map((s) => s.orders / MB)),
      payments: slope(fitted.map((s) => s.t / 60), fitted.map((s) => s.payments / MB)),
    }
    // The table: the sample nearest each 10 s mark.
    const marks = Array.from({ length: Math.floor(elapsed / TABLE_EVERY_S) + 1 }, (_, i) => i * TABLE_EVERY_S)
    const rows = marks
      .map((m) => samples.reduce((best, s) => (Math.abs(s.t - m) < Math.abs(best.t - m) ? s : best)))
      .map((s) => {
        const heap = scrapes.length ? scrapes.reduce((best, x) => (Math.abs(x.t - s.t) < Math.abs(best.t - s.t) ? x : best)) : null
        const h = (v: number | undefined): string => (heap && Math.abs(heap.t - s.t) <= TABLE_EVERY_S / 2 && v !== undefined ? (v / MB).toFixed(1) : '')
        return [Math.round(s.t), (s.orders / MB).toFixed(1), (s.payments / MB).toFixed(1), h(heap?.heapOrders), h(heap?.heapPayments), h(heap?.extOrders), h(heap?.extPayments), s.t < WARMUP_S ? 'warm-up' : '']
      })
    // Where RSS growth would come from: the JS heap (a leak of objects) or external memory (buffers).
    const fittedScrapes = scrapes.filter((x) => x.t >= WARMUP_S)
    const scrapeSlope = (pick: (x: (typeof scrapes)[number]) => number): string => (fittedScrapes.length > 2 ? slope(fittedScrapes.map((x) => x.t / 60), fittedScrapes.map((x) => pick(x) / MB)).toFixed(2) : '?')
    const peak = { orders: Math.max(...samples.map((s) => s.orders)) / MB, payments: Math.max(...samples.map((s) => s.payments)) / MB }
    const within = (v: number): boolean => (MODE === 'full' ? Math.abs(v) : v) < SLOPE_LIMIT_MB_PER_MIN
    const flat = within(slopes.orders) && within(slopes.payments)
    const bound = MODE === 'full' ? `±${SLOPE_LIMIT_MB_PER_MIN}` : `< +${SLOPE_LIMIT_MB_PER_MIN} (bounded form: growth only)`
    const lat = result.latency

    recordFigures('soak', {
      section: 'soak',
      title: `Soak: ${DURATION_S / 60 >= 1 ? `${DURATION_S / 60} min` : `${DURATION_S} s`} at ${RATE.toLocaleString('en-US')} rps through a sidecar pair`,
      what:
        '`npx vitest run --project reliability test/reliability/soak/soak.test.ts` (needs `npm run build`). Two `remora proxy` processes (dist/), ' +
        'orders (outbound) → mTLS → payments (inbound) → app; payments has an ALLOW policy (principal + method + path) evaluated on every request, ' +
        `the access log on (a file per sidecar), 1 % tracing to an OTLP receiver, /metrics scraped every 10 s. Load: autocannon, ${CONNECTIONS} keep-alive connections paced at ${RATE} rps overall (open loop). ` +
        `RSS from /proc/<pid>/status every ${FIT_EVERY_S} s (table: every ${TABLE_EVERY_S} s); the verdict is the least-squares slope after ${WARMUP_S} s of warm-up.`,
      figures: {
        duration: `${elapsed.toFixed(0)} s`,
        'target / achieved rate': `${RATE} / ${achieved.toFixed(0)} rps`,
        'requests answered (client) / served 200 by the app': `${total.toLocaleString('en-US')} / ${appHits.toLocaleString('en-US')}`,
        'non-2xx / transport errors / timeouts': `${non2xx} / ${result.errors} / ${result.timeouts}`,
        'latency p50 / p99 / max (client, ms)': `${lat.p50} / ${lat.p99} / ${lat.max}`,
        'authz decisions at payments (allow / deny during the run)': `${allows.toLocaleString('en-US')} / ${denies}`,
        'access log lines (orders / payments)': `${logs.orders.toLocaleString('en-US')} / ${logs.payments.toLocaleString('en-US')}`,
        'spans exported (1 % sampling)': spans.toLocaleString('en-US'),
        'metrics scrapes (ok / failed)': `${scrapes.length * 2} / ${scrapeErrors}`,
        'RSS start → end, orders (MB)': `${(samples[0]!.orders / MB).toFixed(1)} → ${(samples.at(-1)!.orders / MB).toFixed(1)} (peak ${peak.orders.toFixed(1)})`,
        'RSS start → end, payments (MB)': `${(samples[0]!.payments / MB).toFixed(1)} → ${(samples.at(-1)!.payments / MB).toFixed(1)} (peak ${peak.payments.toFixed(1)})`,
        'RSS slope after warm-up, orders / payments': `${slopes.orders.toFixed(2)} / ${slopes.payments.toFixed(2)} MB/min (limit ${bound}, ${fitted.length} samples)`,
        'heap used slope after warm-up, orders / payments': `${scrapeSlope((x) => x.heapOrders)} / ${scrapeSlope((x) => x.heapPayments)} MB/min`,
        'external memory slope after warm-up, orders / payments': `${scrapeSlope((x) => x.extOrders)} / ${scrapeSlope((x) => x.extPayments)} MB/min`,
        'CPU over the run, orders / payments / test process (load generator, app, receiver)': `${((cpu.orders / elapsed) * 100).toFixed(0)} % / ${((cpu.payments / elapsed) * 100).toFixed(0)} % / ${((cpu.self / elapsed) * 100).toFixed(0)} % of a core`,
      },
      verdict:
        `${non2xx + result.errors + result.timeouts === 0 ? 'zero errors' : `${non2xx + result.errors + result.timeouts} errors`}; ` +
        `RSS ${flat ? (MODE === 'full' ? 'flat' : 'not growing') : MODE === 'full' ? 'NOT flat' : 'GROWING'} (slope ${slopes.orders.toFixed(2)} / ${slopes.payments.toFixed(2)} MB/min after warm-up, bound ${bound} MB/min)`,
      table: { columns: ['t (s)', 'orders RSS (MB)', 'payments RSS (MB)', 'orders heap used (MB)', 'payments heap used (MB)', 'orders external (MB)', 'payments external (MB)', ''], rows },
    })

    expect({ non2xx, errors: result.errors, timeouts: result.timeouts }).toEqual({ non2xx: 0, errors: 0, timeouts: 0 })
    expect(sent - total).toBeGreaterThanOrEqual(0)
    expect(sent - total).toBeLessThanOrEqual(CONNECTIONS)
    expect(served200).toBe(sent + 1)
    expect(allows).toBe(sent + 1)
    expect(denies).toBe(0)
    expect(logs).toEqual({ orders: expectedLog, payments: expectedLog })
    expect(spans).toBeGreaterThan(0)
    // The load generator kept up (on a loaded machine within 10 %): otherwise the soak did not soak.
    expect(achieved).toBeGreaterThan(RATE * 0.9)
    expect(flat, `RSS slopes ${slopes.orders.toFixed(2)} / ${slopes.payments.toFixed(2)} MB/min, bound ${bound}`).toBe(true)
  })
})
