// docs/benchmarks.md, generated from one run's results. Every figure is a median over the rounds
// with its spread (min–max), and a ratio to the nginx pair of the same run.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { APT_LINE, BENCH_DIR } from './contenders.js'
import { IDLE_SETTLED_S, spread, type BenchResults, type RunRecord, type Spread } from './results.js'
import { LATENCY_RPS } from './workloads.js'

const BASE = 'nginx'

interface Opts {
  readonly jsonPath: string
  readonly micro: readonly { name: string; file: string; what: string }[]
  /** The latest full run before this one (bench/results/), for the "does not regress" check of the HTTP/1.1 path. */
  readonly previous?: { readonly results: BenchResults; readonly path: string } | null
}

const f0 = (x: number): string => Math.round(x).toLocaleString('en')
const mb = (b: number): string => (b / 2 ** 20).toFixed(1)

function cell(s: Spread | null, fmt: (x: number) => string, n: number): string {
  if (!s) return '–'
  return n > 1 && s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median)
}

function ratio(a: Spread | null, b: Spread | null): string {
  if (!a || !b || b.median === 0) return '–'
  return `${(a.median / b.median).toFixed(2)}×`
}

export interface Summary {
  rps: Spread | null
  mibps: Spread | null
  p50: Spread | null
  p90: Spread | null
  p99: Spread | null
  p999: Spread | null
  addedP50: Spread | null
  addedP99: Spread | null
  cpu: Spread | null
  rssOut: Spread | null
  rssIn: Spread | null
  errors: number
}

export function summarize(r: BenchResults, workload: string, contender: string): Summary {
  const runs = r.runs.filter((x) => x.workload === workload && x.contender === contender)
  const directOf = (run: RunRecord): RunRecord | undefined => r.runs.find((x) => x.workload === workload && x.contender === 'direct' && x.rep === run.rep)
  const added = (q: 'p50' | 'p99'): Spread | null =>
    spread(
      runs.map((run) => {
        const d = directOf(run)
        const a = run.generator.latencyUs[q]
        const b = d?.generator.latencyUs[q]
        return a !== null && b !== null && b !== undefined ? a - b : null
      }),
    )
  return {
    rps: spread(runs.map((x) => x.generator.rps)),
    mibps: spread(runs.map((x) => (x.generator.bytesPerSecond ?? NaN) / 2 ** 20)),
    p50: spread(runs.map((x) => x.generator.latencyUs.p50)),
    p90: spread(runs.map((x) => x.generator.latencyUs.p90)),
    p99: spread(runs.map((x) => x.generator.latencyUs.p99)),
    p999: spread(runs.map((x) => x.generator.latencyUs.p999)),
    addedP50: contender === 'direct' ? null : added('p50'),
    addedP99: contender === 'direct' ? null : added('p99'),
    cpu: spread(runs.map((x) => x.cpuUsPerRequest)),
    rssOut: spread(runs.map((x) => x.roles.outbound?.peakRssBytes)),
    rssIn: spread(runs.map((x) => x.roles.inbound?.peakRssBytes)),
    errors: runs.reduce((s, x) => s + x.generator.errors, 0),
  }
}

function idle(r: BenchResults, contender: string, role: string, phase: 'start' | 'settled' = 'start', field: 'rssBytes' | 'rssAnonBytes' | 'rssFileBytes' = 'rssBytes'): Spread | null {
  return spread(r.idle.filter((x) => x.contender === contender && x.role === role && (x.phase ?? 'start') === phase).map((x) => x[field]))
}

/** The largest idle RSS of either sidecar over the rounds, at `phase` (0 when not measured). */
function idleMaxOf(r: BenchResults, contender: string, phase: 'start' | 'settled'): number {
  return Math.max(...r.idle.filter((x) => x.contender === contender && (x.phase ?? 'start') === phase).map((x) => x.rssBytes), 0)
}

const ms = (us: number): string => (us / 1000).toFixed(2)

/** Whether the contender cannot run this workload at all (no HTTP/2 or TCP in it): shown as n/a, not as a failure. */
export function isNotApplicable(r: BenchResults, workload: string, contender: string): boolean {
  return (r.notApplicable ?? []).some((x) => x.workload === workload && x.contender === contender)
}

/** A table row for a contender without the workload: its name, `n/a` and dashes. */
function naRow(name: string, columns: number): string {
  return `| ${name} | n/a (HTTP/1.x only) |${' – |'.repeat(columns - 2)}`
}

/** What one "request" is in each workload, for the column heads. */
const UNIT: Record<string, { rate: string; cpu: string }> = {
  newconn: { rate: 'connections/s', cpu: 'proxy CPU µs/conn' },
  grpc: { rate: 'calls/s', cpu: 'proxy CPU µs/call' },
  tcp: { rate: 'round trips/s', cpu: 'proxy CPU µs/round trip' },
}

function workloadTable(r: BenchResults, w: BenchResults['workloads'][number]): string {
  const n = Number(r.settings.reps)
  const base = (k: keyof Summary): Spread | null => summarize(r, w.name, BASE)[k] as Spread | null
  const rows: string[] = []
  const contenders = r.contenders.filter((c) => !isNotApplicable(r, w.name, c.name))
  const na = r.contenders.filter((c) => isNotApplicable(r, w.name, c.name))
  if (w.name === 'tcp-bulk') {
    rows.push(`| contender | MiB/s | × nginx | proxy CPU µs/MiB | × nginx | peak RSS out / in MB |`, `|---|---|---|---|---|---|`)
    for (const c of contenders) {
      const s = summarize(r, w.name, c.name)
      rows.push(`| ${c.name} | ${cell(s.mibps, f0, n)} | ${ratio(s.mibps, base('mibps'))} | ${cell(s.cpu, f0, n)} | ${ratio(s.cpu, base('cpu'))} | ${s.rssOut ? `${mb(s.rssOut.max)} / ${mb(s.rssIn?.max ?? 0)}` : '–'} |`)
    }
    for (const c of na) rows.push(naRow(c.name, 6))
  } else if (w.name === 'latency') {
    rows.push(
      `| contender | achieved rps | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 ms | × nginx | added p99 ms | × nginx | proxy CPU µs/req | × nginx | peak RSS out / in MB |`,
      `|---|---|---|---|---|---|---|---|---|---|---|---|---|`,
    )
    for (const c of r.contenders) {
      const s = summarize(r, w.name, c.name)
      rows.push(
        `| ${c.name} | ${cell(s.rps, f0, n)} | ${cell(s.p50, ms, n)} | ${cell(s.p90, ms, n)} | ${cell(s.p99, ms, n)} | ${cell(s.p999, ms, n)} | ${cell(s.addedP50, ms, n)} | ${ratio(s.addedP50, base('addedP50'))} | ${cell(s.addedP99, ms, n)} | ${ratio(s.addedP99, base('addedP99'))} | ${cell(s.cpu, f0, n)} | ${ratio(s.cpu, base('cpu'))} | ${s.rssOut ? `${mb(s.rssOut.max)} / ${mb(s.rssIn?.max ?? 0)}` : '–'} |`,
      )
    }
  } else if (w.name === 'large') {
    rows.push(`| contender | MiB/s | × nginx | responses/s | p50 ms | p99 ms | proxy CPU µs/MiB | × nginx | peak RSS out / in MB |`, `|---|---|---|---|---|---|---|---|---|`)
    for (const c of r.contenders) {
      const s = summarize(r, w.name, c.name)
      rows.push(
        `| ${c.name} | ${cell(s.mibps, f0, n)} | ${ratio(s.mibps, base('mibps'))} | ${cell(s.rps, f0, n)} | ${cell(s.p50, ms, n)} | ${cell(s.p99, ms, n)} | ${cell(s.cpu, f0, n)} | ${ratio(s.cpu, base('cpu'))} | ${s.rssOut ? `${mb(s.rssOut.max)} / ${mb(s.rssIn?.max ?? 0)}` : '–'} |`,
      )
    }
  } else {
    const { rate, cpu } = UNIT[w.name] ?? { rate: 'requests/s', cpu: 'proxy CPU µs/req' }
    rows.push(`| contender | ${rate} | × nginx | p50 ms | p90 ms | p99 ms | p99.9 ms | ${cpu} | × nginx | peak RSS out / in MB |`, `|---|---|---|---|---|---|---|---|---|---|`)
    for (const c of contenders) {
      const s = summarize(r, w.name, c.name)
      rows.push(
        `| ${c.name} | ${cell(s.rps, f0, n)} | ${ratio(s.rps, base('rps'))} | ${cell(s.p50, ms, n)} | ${cell(s.p90, ms, n)} | ${cell(s.p99, ms, n)} | ${cell(s.p999, ms, n)} | ${cell(s.cpu, f0, n)} | ${ratio(s.cpu, base('cpu'))} | ${s.rssOut ? `${mb(s.rssOut.max)} / ${mb(s.rssIn?.max ?? 0)}` : '–'} |`,
      )
    }
    for (const c of na) rows.push(naRow(c.name, 10))
  }
  const errs = r.contenders.map((c) => [c.name, summarize(r, w.name, c.name).errors] as const).filter(([, e]) => e > 0)
  return `### ${w.title}\n\n${w.method}\n${w.seconds} s per run${Number(r.settings.reps) > 1 ? `, ${r.settings.reps} runs each: median (min–max)` : ''}.\n\n${rows.join('\n')}\n${errs.length ? `\nFailed requests: ${errs.map(([c, e]) => `${c} ${e}`).join(', ')}.\n` : ''}`
}

interface Target {
  what: string
  goal: string
  measured: string
  met: boolean | null
  gap: string
}

/** Issue 16's goals, for the HTTP/1.1 pair on each runtime measured (the machine's Node 20 and the image's Node 26). */
const GOALS = { throughput: 0.5, cpu: 2.3, addedP50: 1.8, addedP99: 2.5, large: 0.8, idleMB: 60, peakLargeMB: 90 } as const

function targets(r: BenchResults, remora: string, previous: Opts['previous']): Target[] {
  const t: Target[] = []
  const s = (w: string, c: string): Summary => summarize(r, w, c)
  const rel = (a: Spread | null, b: Spread | null): number | null => (a && b && b.median ? a.median / b.median : null)
  const pct = (x: number): string => `${Math.round(x * 100)} %`
  const has = (w: string): boolean => r.workloads.some((x) => x.name === w)
  const MB = 2 ** 20
  const runtimes = [remora, ...r.contenders.map((c) => c.name).filter((n) => n.startsWith(`${remora}@`))]
  const label = (c: string): string => `\`${c}\`${c.includes('@') ? '' : ' (Node 20)'}`
  const atLeast = (what: string, goal: number, x: number | null, show: (x: number) => string, unit: (d: number) => string): Target => ({ what, goal: `≥ ${show(goal)}`, measured: x === null ? '–' : show(x), met: x === null ? null : x >= goal, gap: x === null || x >= goal ? '' : unit(goal - x) })
  const atMost = (what: string, goal: number, x: number | null, show: (x: number) => string, unit: (d: number) => string): Target => ({ what, goal: `≤ ${show(goal)}`, measured: x === null ? '–' : show(x), met: x === null ? null : x <= goal, gap: x === null || x <= goal ? '' : unit(x - goal) })
  const times = (x: number): string => `${x.toFixed(2)}×`
  for (const c of runtimes) {
    if (has('throughput')) {
      t.push(atLeast(`max throughput, ${label(c)}`, GOALS.throughput, rel(s('throughput', c).rps, s('throughput', BASE).rps), (x) => `${pct(x)} of the nginx pair`, (d) => `${Math.round(d * 100)} points short`))
      t.push(atMost(`proxy CPU per request at max throughput, ${label(c)}`, GOALS.cpu, rel(s('throughput', c).cpu, s('throughput', BASE).cpu), (x) => `${times(x)} nginx`, (d) => `${Math.round((d / GOALS.cpu) * 100)} % over`))
    }
    if (has('latency')) {
      t.push(atMost(`added p50 at ${LATENCY_RPS.toLocaleString('en')} rps, ${label(c)}`, GOALS.addedP50, rel(s('latency', c).addedP50, s('latency', BASE).addedP50), (x) => `${times(x)} nginx`, (d) => `${Math.round((d / GOALS.addedP50) * 100)} % over`))
      t.push(atMost(`added p99 at ${LATENCY_RPS.toLocaleString('en')} rps, ${label(c)}`, GOALS.addedP99, rel(s('latency', c).addedP99, s('latency', BASE).addedP99), (x) => `${times(x)} nginx`, (d) => `${Math.round((d / GOALS.addedP99) * 100)} % over`))
    }
    if (has('large')) t.push(atLeast(`1 MiB responses throughput, ${label(c)}`, GOALS.large, rel(s('large', c).mibps, s('large', BASE).mibps), (x) => `${pct(x)} of nginx`, (d) => `${Math.round(d * 100)} points short`))
    const settled = idleMaxOf(r, c, 'settled')
    const start = idleMaxOf(r, c, 'start')
    if (settled || start) {
      const x = settled || start
      const samples = r.idle.filter((y) => y.contender === c && (y.phase ?? 'start') === (settled ? 'settled' : 'start'))
      const anon = Math.max(...samples.map((y) => y.rssAnonBytes ?? 0), 0)
      const file = Math.max(...samples.map((y) => y.rssFileBytes ?? 0), 0)
      t.push({
        what: `sidecar RSS idle, ${label(c)}`,
        goal: `≤ ${GOALS.idleMB} MB`,
        measured: `${mb(x)} MB ${settled ? `settled (${IDLE_SETTLED_S} s after start), ${mb(start)} MB 1 s after start` : '1 s after start'}; largest sidecar, largest round${anon ? `; of it ${mb(anon)} MB anonymous, ${mb(file)} MB the binary's and libraries' pages` : ''}`,
        met: x <= GOALS.idleMB * MB,
        gap: x <= GOALS.idleMB * MB ? '' : `${mb(x - GOALS.idleMB * MB)} MB over`,
      })
    }
    const peakOf = (w: string): number => Math.max(...r.runs.filter((x) => x.contender === c && x.workload === w).map((x) => x.peakProxyRssBytes ?? 0), 0)
    const large = peakOf('large')
    if (large) t.push({ what: `sidecar peak RSS under load, 1 MiB bodies, ${label(c)}`, goal: `≤ ${GOALS.peakLargeMB} MB`, measured: `${mb(large)} MB (peak of either sidecar)`, met: large <= GOALS.peakLargeMB * MB, gap: large <= GOALS.peakLargeMB * MB ? '' : `${mb(large - GOALS.peakLargeMB * MB)} MB over` })
    const perWorkload = r.workloads.map((w) => [w.name, peakOf(w.name)] as const).filter(([, b]) => b > 0)
    if (perWorkload.length) t.push({ what: `sidecar peak RSS per workload, ${label(c)} (no goal)`, goal: '–', measured: perWorkload.map(([w, b]) => `${w} ${mb(b)}`).join(', '), met: null, gap: '' })
  }
  if (has('throughput') && previous) {
    // Issue 15: the HTTP/1.1 path's CPU per request does not regress. Compared relative to nginx in
    // each run (absolute µs move 10–30 % with the machine's load), with 10 % for noise.
    const p = previous.results
    const now = rel(s('throughput', remora).cpu, s('throughput', BASE).cpu)
    const before = rel(summarize(p, 'throughput', remora).cpu, summarize(p, 'throughput', BASE).cpu)
    if (now !== null && before !== null) {
      const abs = (x: BenchResults): string => f0(summarize(x, 'throughput', remora).cpu?.median ?? NaN)
      t.push({
        what: 'HTTP/1.1 proxy CPU per request (max throughput) does not regress',
        goal: `≤ the previous full run × 1.10, relative to nginx`,
        measured: `${now.toFixed(2)}× nginx (${abs(r)} µs) vs ${before.toFixed(2)}× (${abs(p)} µs) in \`${previous.path}\` (commit \`${p.commit.sha.slice(0, 12)}\`)`,
        met: now <= before * 1.1,
        gap: now <= before * 1.1 ? '' : `${Math.round((now / before - 1) * 100)} % above`,
      })
    }
  }
  t.push(...microTargets(r))
  return t
}

/** The targets the other issues set for their micro-benchmarks, read from each one's output. */
function microTargets(r: BenchResults): Target[] {
  const t: Target[] = []
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each micro-benchmark prints its own JSON shape
  const out = (name: string): any => r.micro.find((x) => x.name === name && x.status === 'ok')?.output
  const push = out('push-convergence')
  if (push?.applyToLastAckMs) {
    const p99 = push.applyToLastAckMs.p99 as number
    t.push({ what: `push convergence, ${push.sidecars} sidecars, apply → last ACK p99 (${push.changes} changes)`, goal: '< 1 s', measured: `${Math.round(p99)} ms (p50 ${Math.round(push.applyToLastAckMs.p50)} ms)`, met: p99 < 1000, gap: p99 < 1000 ? '' : `${Math.round(p99 - 1000)} ms over` })
  }
  if (push?.quarantineToLastAckMs) {
    const q = push.quarantineToLastAckMs as { p50: number; p99: number; samples: number }
    t.push({ what: `quarantine convergence, ${push.sidecars} sidecars, remora quarantine → last ACK p99 (${q.samples} quarantines)`, goal: '< 1 s', measured: `${Math.round(q.p99)} ms (p50 ${Math.round(q.p50)} ms)`, met: q.p99 < 1000, gap: q.p99 < 1000 ? '' : `${Math.round(q.p99 - 1000)} ms over` })
  }
  const jv = out('jwt-verify')
  if (jv?.ES256) {
    const worst = Math.max(jv.ES256.cachedUs, jv.RS256?.cachedUs ?? 0)
    t.push({ what: 'JWT verify, cached token (ES256 / RS256)', goal: '< 5 µs', measured: `${jv.ES256.cachedUs} / ${jv.RS256?.cachedUs ?? '–'} µs`, met: worst < 5, gap: worst < 5 ? '' : `${(worst - 5).toFixed(1)} µs over` })
  }
  const jl = out('jwt-latency')
  if (jl?.target) t.push({ what: 'added p50 of a JWT-protected route at 1,000 rps', goal: 'within 10 %', measured: `${jl.target.p50_pct} % (${jl.interleaved?.added?.p50_paired_ms ?? jl.added_vs_no_jwt?.jwt?.p50_paired_ms} ms)`, met: jl.target.met, gap: jl.target.met ? '' : `${(jl.target.p50_pct - 10).toFixed(1)} points over` })
  const tr = out('tracing-overhead')
  if (tr?.target) t.push({ what: 'added p50 of tracing at 1 % sampling, 1,000 rps', goal: '< 5 %', measured: `${tr.target.p50_pct} % (${tr.interleaved?.added?.p50_paired_ms ?? tr.added_vs_off['1%'].p50_paired_ms} ms)`, met: tr.target.met, gap: tr.target.met ? '' : `${(tr.target.p50_pct - 5).toFixed(1)} points over` })
  return t
}

function headline(r: BenchResults): string | null {
  const has = (w: string): boolean => r.workloads.some((x) => x.name === w)
  if (!['throughput', 'latency', 'large', 'newconn'].some(has)) return null
  const rows = ['| contender | max rps | × nginx | CPU µs/req at max | × nginx | added p50 / p99 ms at 1k rps | 1 MiB MiB/s | × nginx | new mTLS conn/s | × nginx | idle RSS out / in MB |', '|---|---|---|---|---|---|---|---|---|---|---|']
  const b = (w: string): Summary => summarize(r, w, BASE)
  for (const c of r.contenders) {
    const t = has('throughput') ? summarize(r, 'throughput', c.name) : null
    const l = has('latency') ? summarize(r, 'latency', c.name) : null
    const g = has('large') ? summarize(r, 'large', c.name) : null
    const n = has('newconn') ? summarize(r, 'newconn', c.name) : null
    const io = idle(r, c.name, 'outbound')
    const ii = idle(r, c.name, 'inbound')
    rows.push(
      `| ${c.name} | ${t?.rps ? f0(t.rps.median) : '–'} | ${t ? ratio(t.rps, b('throughput').rps) : '–'} | ${t?.cpu ? f0(t.cpu.median) : '–'} | ${t ? ratio(t.cpu, b('throughput').cpu) : '–'} | ${l?.addedP50 ? `${ms(l.addedP50.median)} / ${ms(l.addedP99?.median ?? 0)}` : '–'} | ${g?.mibps ? f0(g.mibps.median) : '–'} | ${g ? ratio(g.mibps, b('large').mibps) : '–'} | ${n?.rps ? f0(n.rps.median) : '–'} | ${n ? ratio(n.rps, b('newconn').rps) : '–'} | ${io ? `${mb(io.median)} / ${mb(ii?.median ?? 0)}` : '–'} |`,
    )
  }
  return rows.join('\n')
}

/** HTTP/2, gRPC and TCP at a glance (issue 15's workloads), when the run has them. */
function protocolHeadline(r: BenchResults): string | null {
  const ws = [
    { w: 'h2', label: 'h2 req/s', cpu: 'h2 CPU µs/req' },
    { w: 'grpc', label: 'gRPC calls/s', cpu: 'gRPC CPU µs/call' },
    { w: 'tcp', label: 'TCP round trips/s', cpu: 'TCP CPU µs/round trip' },
  ].filter((x) => r.workloads.some((y) => y.name === x.w))
  const bulk = r.workloads.some((y) => y.name === 'tcp-bulk')
  if (ws.length === 0 && !bulk) return null
  const head = ['contender', ...ws.flatMap((x) => [x.label, '× nginx', x.cpu, '× nginx']), ...(bulk ? ['TCP bulk MiB/s', '× nginx', 'CPU µs/MiB', '× nginx'] : [])]
  const rows = [`| ${head.join(' | ')} |`, `|${'---|'.repeat(head.length)}`]
  for (const c of r.contenders) {
    const cells: string[] = [c.name]
    for (const { w } of ws) {
      if (isNotApplicable(r, w, c.name)) {
        cells.push('n/a', '', 'n/a', '')
        continue
      }
      const x = summarize(r, w, c.name)
      const b = summarize(r, w, BASE)
      cells.push(x.rps ? f0(x.rps.median) : '–', ratio(x.rps, b.rps), x.cpu ? f0(x.cpu.median) : '–', ratio(x.cpu, b.cpu))
    }
    if (bulk) {
      if (isNotApplicable(r, 'tcp-bulk', c.name)) cells.push('n/a', '', 'n/a', '')
      else {
        const x = summarize(r, 'tcp-bulk', c.name)
        const b = summarize(r, 'tcp-bulk', BASE)
        cells.push(x.mibps ? f0(x.mibps.median) : '–', ratio(x.mibps, b.mibps), x.cpu ? f0(x.cpu.median) : '–', ratio(x.cpu, b.cpu))
      }
    }
    rows.push(`| ${cells.join(' | ')} |`)
  }
  return rows.join('\n')
}

function reading(r: BenchResults, remora: string): string {
  const s = (w: string, c: string): Summary => summarize(r, w, c)
  const lines: string[] = []
  const has = (w: string): boolean => r.workloads.some((x) => x.name === w)
  const rel = (a: Spread | null, b: Spread | null): number | null => (a && b && b.median ? a.median / b.median : null)
  const remoras = r.contenders.filter((c) => c.name.startsWith('remora')).map((c) => c.name)
  const each = (w: string, k: keyof Summary, fmt: (x: number) => string): string =>
    remoras
      .map((c) => {
        const x = rel(s(w, c)[k] as Spread | null, s(w, BASE)[k] as Spread | null)
        return x === null ? null : `${c} ${fmt(x)}`
      })
      .filter(Boolean)
      .join(', ')
  const pct = (x: number): string => `${Math.round(x * 100)} %`
  const times = (x: number): string => `${x.toFixed(1)}×`
  // A bullet only where some remora contender ran the workload (a --only run may have none).
  const measured = (w: string): boolean => has(w) && r.runs.some((x) => x.workload === w && x.contender.startsWith('remora'))
  const vs = (w: string, k: keyof Summary, other: string): string =>
    remoras
      .map((c) => {
        const x = rel(s(w, c)[k] as Spread | null, s(w, other)[k] as Spread | null)
        return x === null ? null : `${c} ${times(x)}`
      })
      .filter(Boolean)
      .join(', ')
  if (has('throughput')) {
    lines.push(
      `- **Throughput and CPU per request.** Share of the nginx pair's maximum rate: ${each('throughput', 'rps', pct)}; CPU per request: ${each('throughput', 'cpu', times)} nginx's. On two shared cores the proxies, the app and the client compete for CPU, so CPU per request decides the maximum rate. The node:http engine pays for Node's HTTP machinery twice per hop (llhttp → \`IncomingMessage\`/\`ServerResponse\` on the way in, undici's request writer and its own llhttp on the way out, the same in reverse for the response), on both sidecars. The raw engine parses heads with the same llhttp but passes bytes through, which leaves sockets + TLS driven from JavaScript streams, our per-request pipeline (path normalization, authz, metrics, trace context, access log) and the head rewrite. STACK.md measured the floor for Node on this machine, a TCP↔TLS byte pipe with no HTTP at all, at ≈ 1.7× nginx's CPU: no Node design gets below it, and the distance between the raw engine and that floor is what per-request work in remora itself still costs (see the profile below).`,
    )
  }
  if (has('latency')) {
    lines.push(
      `- **Latency at ${LATENCY_RPS.toLocaleString('en')} rps.** Added p50 relative to nginx's: ${each('latency', 'addedP50', times)}; added p99: ${each('latency', 'addedP99', times)}. At this rate the proxies are not CPU-bound; the difference at the median is the per-request work on each sidecar's event loop (a few hundred µs of CPU per request for the pair at this rate, see the table: at low load each request pays for its own syscalls and wake-ups, which a busy loop shares). The tail adds garbage-collection pauses and the scheduling of two event loops on two cores shared with the app and the load generator; p99 ratios move more between runs than p50 ratios.`,
    )
  }
  if (has('large')) {
    lines.push(
      `- **1 MiB responses.** Share of nginx's throughput: ${each('large', 'mibps', pct)}; CPU per MiB: ${each('large', 'cpu', times)} nginx's. Large bodies are TLS encryption/decryption plus copies; nginx and haproxy hand OpenSSL large buffers, while Node's TLS socket goes through JavaScript stream machinery per chunk (16 KiB TLS records, a callback and a \`Buffer\` per chunk, back-pressure through \`write()\`/\`drain\`), on both sides of each sidecar; the profile below finds a quarter of a sidecar's samples in garbage collection for this workload (a fresh \`Buffer\` per socket read).`,
    )
  }
  if (has('newconn')) {
    lines.push(
      `- **New connections.** CPU per fresh mTLS connection (inbound side): ${each('newconn', 'cpu', times)} nginx's. The handshake is OpenSSL in every contender; remora adds a first-byte classification (PERMISSIVE detection), reading the peer certificate into a SPIFFE identity, and per connection a \`TLSSocket\` with its JavaScript stream state, the engine's parser and connection objects, and their teardown (see the profile below). The client is a Node process that does a full handshake per request too, so the connection *rates* are limited by the client for every contender; the CPU per connection is the figure to compare.`,
    )
  }
  if (measured('h2')) {
    lines.push(
      `- **HTTP/2.** Share of nginx's rate: ${each('h2', 'rps', pct)}; CPU per request: ${each('h2', 'cpu', times)} nginx's, ${vs('h2', 'cpu', 'haproxy')} haproxy's. Both remora engines hand HTTP/2 streams to the same h2 engine (node:http2: a server session for the downstream, multiplexed client sessions upstream, on each sidecar) and the same stages; only HTTP/1.1 differs between them. nghttp2 does the framing, HPACK and flow control in C++, but every stream still makes JavaScript objects on both sides of both sidecars (the server stream and its headers object, the client stream, their stream state) and runs the same per-request stages as HTTP/1.1; STACK.md measured HTTP/2 between sidecars as the costliest forwarding design in Node. nginx proxies HTTP/2 upstream only through \`grpc_pass\` and does not multiplex it (one upstream connection per stream in flight, kept alive); haproxy multiplexes streams on shared connections on both hops.`,
    )
  }
  if (measured('grpc')) {
    lines.push(
      `- **gRPC.** The grpc-js client and the grpc-js app are Node processes on the same two cores, so they set the call rate as much as the proxies do (compare \`direct\`); read the CPU per call: ${each('grpc', 'cpu', times)} nginx's, ${vs('grpc', 'cpu', 'haproxy')} haproxy's. A unary call is one HTTP/2 stream with a request body, a response body and trailers (\`grpc-status\`), so it costs a little more than the h2 workload's GET; remora also counts gRPC messages per stream and records \`grpc_response_status\`.`,
    )
  }
  if (measured('tcp')) {
    lines.push(
      `- **TCP.** CPU per 1 KiB round trip: ${each('tcp', 'cpu', times)} nginx's, ${vs('tcp', 'cpu', 'haproxy')} haproxy's; rate: ${each('tcp', 'rps', pct)} of nginx's. Opaque TCP has no per-request work in remora (authorization, metrics and the access line are per connection), and both remora engines share the same L4 relay: what is left is Node's socket and TLS machinery: per round trip, each sidecar reads and writes a chunk on both of its sockets in both directions (one of them through TLS), each read a JavaScript callback and a fresh \`Buffer\`. That is the Node floor STACK.md measured for a TCP↔TLS byte pipe; nginx's stream module and haproxy move the bytes in C from one buffer per connection.`,
    )
  }
  if (measured('tcp-bulk')) {
    lines.push(
      `- **TCP bulk.** Share of nginx's bulk throughput: ${each('tcp-bulk', 'mibps', pct)}; CPU per MiB: ${each('tcp-bulk', 'cpu', times)} nginx's. As with 1 MiB HTTP responses, bulk bytes are TLS encryption and decryption plus copies; Node's TLS socket delivers them as 16 KiB records, each a callback and a \`Buffer\`, with back-pressure through \`write()\`/\`drain\`.`,
    )
  }
  const idleMax = idleMaxOf(r, remora, 'settled') || idleMaxOf(r, remora, 'start')
  if (idleMax) {
    const file = Math.max(...r.idle.filter((x) => x.contender === remora && x.phase === 'settled').map((x) => x.rssFileBytes ?? 0), 0)
    lines.push(
      `- **Memory.** A remora sidecar idles at ≈ ${mb(idleMax)} MB${file ? `, ${mb(file)} MB of it the \`node\` binary's own pages (shared by every sidecar of a host)` : ''}, where nginx and haproxy need 15–20 MB (and http-proxy ≈ 50 MB). A bare Node process with one listening socket is 43–45 MB here (Node 26: 46–54): the rest is V8's heap (the modules a sidecar loads at start: zod, yaml, pino, prom-client and remora's own; the control-plane client, undici, jose and OpenTelemetry only when used) and what executing TLS and llhttp pages in. Under load it grows by V8's young generation (4 MiB semi-spaces with the sidecar's V8 flags) and socket buffers; with 1 MiB responses by the buffers in flight. bench/hot-path.md has the per-change figures.`,
    )
  }
  lines.push(
    `- **Security work the peers skip.** nginx cannot check a server's SPIFFE URI SAN (its name check looks at DNS SANs and the CN only), so the nginx outbound proxy here runs with \`proxy_ssl_verify off\`; haproxy checks the chain but no name. remora checks the server's SPIFFE ID on every new connection, authorizes every request against 10 policies, rewrites XFCC, normalizes the path, records Istio's metrics, propagates trace context and writes a JSON access line.`,
  )
  return lines.join('\n')
}

function microSection(r: BenchResults, opts: Opts): string {
  const out: string[] = []
  for (const m of opts.micro) {
    const rec = r.micro.find((x) => x.name === m.name)
    out.push(`### ${m.name}: ${m.what}\n`)
    if (!rec || rec.status === 'missing') out.push(`Not yet measured (\`${m.file}\` does not exist yet).\n`)
    else if (rec.status === 'skipped') out.push(`Skipped in this run (\`--no-micro\`).\n`)
    else if (rec.status === 'failed') out.push(`**Failed** in this run: \`${(rec.error ?? '').split('\n')[0]!.slice(0, 300)}\`\n`)
    else {
      const when = rec.commit && rec.commit !== r.commit.sha ? ` Re-measured ${rec.measuredAt?.slice(0, 16).replace('T', ' ') ?? ''} UTC at commit \`${rec.commit.slice(0, 12)}\`${rec.dirtyFiles?.length ? ` with uncommitted changes in ${rec.dirtyFiles.map((f) => `\`${f}\``).join(', ')}` : ''} (after the run above).` : ''
      out.push(`\`${m.file}\`, ${rec.seconds} s.${when} Its output:\n\n\`\`\`json\n${JSON.stringify(rec.output, null, 2)}\n\`\`\`\n`)
    }
  }
  return out.join('\n')
}

export function renderReport(r: BenchResults, opts: Opts): string {
  const remora = r.contenders.find((c) => c.name.startsWith('remora'))?.name ?? 'remora'
  const m = r.machine as { cpu: string; cores: number; memoryGiB: number; kernel: string; os: string; loadAvgAtStart: number[]; loadAvgAtEnd?: number[] }
  const loads = r.runs.map((x) => x.loadAvg1)
  const loadSpread = spread(loads)
  const dirty = r.commit.dirtyFiles.length ? ` with uncommitted changes in ${r.commit.dirtyFiles.map((f) => `\`${f}\``).join(', ')}` : ''
  const hotPathFile = join(BENCH_DIR, 'hot-path.md')
  const hotPath = existsSync(hotPathFile) ? readFileSync(hotPathFile, 'utf8').trim() : ''
  const tg = targets(r, remora, opts.previous ?? null)
  const protocols = protocolHeadline(r)
  const parts: string[] = []
  parts.push(`# Benchmarks

<!-- Generated by \`npm run bench\` (bench/run.ts → bench/lib/report.ts). Do not edit by hand: edit the generator, or bench/hot-path.md for the profiling section, and run it again. -->

remora against the proxies users would pick instead, measured side by side in one run on one machine.
This run: ${r.quick ? '**quick run (one round, short runs): a smoke test of the suite, not numbers to quote**; ' : ''}${r.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${Math.round((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 60_000)} min in all (1-minute load average ${loadSpread ? `${loadSpread.min.toFixed(1)}–${loadSpread.max.toFixed(1)}` : '–'} on ${m.cores} cores while measuring: ${loadSpread && loadSpread.median > 2.5 ? '**a busy machine, absolute figures are depressed and noisy; compare the ratios**' : 'a quiet machine'}), commit \`${r.commit.sha.slice(0, 12)}\` (“${r.commit.subject}”)${dirty}.
Raw numbers: [\`${opts.jsonPath}\`](../${opts.jsonPath}).

## At a glance

Medians over ${r.settings.reps} interleaved round(s). “× nginx” is the ratio to the nginx pair in the same run.
Added latency is the contender's latency minus \`direct\`'s in the same round.

${headline(r) ?? '(No HTTP/1.1 workload in this run.)'}
${
  protocols
    ? `
HTTP/2, gRPC and TCP through the same pairs (issue 15; \`http-proxy\` proxies HTTP/1.x only). For gRPC the Node client limits the rate for every contender: compare CPU per call.

${protocols}
`
    : ''
}
## Targets (issues 04 push, 05 JWT, 06 tracing, 15 protocols, 16 lightweight)

Issue 16's goals (they replace issue 03's) for the HTTP/1.1 pair on each runtime measured; memory is RSS from \`/proc/<pid>/status\`.

| target | goal | measured | met |
|---|---|---|---|
${tg.map((t) => `| ${t.what} | ${t.goal} | ${t.measured} | ${t.met === null ? '–' : t.met ? 'yes' : `**no**, ${t.gap}`} |`).join('\n')}

## Where remora loses, and why

${reading(r, remora)}
`)
  if (hotPath) parts.push(`## Profiling the remora pair and hot-path fixes\n\n${hotPath.replace(/^# .*\n+/, '')}\n`)
  parts.push(`## Method

**Topology**, on loopback, set up afresh for each contender in each round:

\`\`\`
load generator ──HTTP/1.1──▶ outbound proxy ──mTLS: TLS 1.3, client certificates, SPIFFE URI SANs──▶ inbound proxy ──HTTP/1.1──▶ app
${protocols ? `load generator ──h2c──────▶ outbound proxy ──the same mTLS, ALPN h2─────────────────────────────▶ inbound proxy ──h2c──────▶ app (h2 and gRPC)
load generator ──TCP──────▶ outbound proxy ──the same mTLS (remora: ALPN remora-tcp)────────────▶ inbound proxy ──TCP──────▶ app (echo, byte source)
` : ''}\`\`\`
${protocols ? `
Each protocol has its own entry port on each contender (remora: the outbound listener detects h2c by its
preface and routes it by \`:authority\`; TCP goes through a local bind port, \`outbound.listeners\`, since
there is no iptables redirect here). \`http-proxy\` has no HTTP/2 or TCP proxying: n/a in those tables.
` : ''}
Certificates: ECDSA P-256 from our own CA, minted for the run with \`remora ca init\` and \`remora ca issue\`
(\`spiffe://bench.local/ns/bench/sa/client\` for the outbound side, \`…/sa/app\` for the inbound side).
**One process with one worker (thread) per proxy**, so that the comparison is fair on a ${m.cores}-core machine
shared by two proxies, the app and the load generator; nothing is pinned to a core.

**App**: ${String(r.settings.app)}.

**Contenders**:
${r.contenders.map((c) => `- \`${c.name}\`: ${c.describe}.`).join('\n')}

**Workloads** (Istio's benchmark settings where they apply; HTTP/1.1 unless the title says otherwise):
${r.workloads.map((w) => `- *${w.title}*, ${w.seconds} s: ${w.method}`).join('\n')}

Each measured run is preceded by a short discarded warm-up run (${Object.entries(r.settings.warmupSeconds as Record<string, number>)
    .map(([k, v]) => `${k} ${v} s`)
    .join(', ')}) on the same proxies.
The open-loop generator is h2load with \`--rps\` (not autocannon): it is C, so it takes little CPU from the proxies, and its
per-request log gives exact percentiles. Its latency is measured from when a request is actually written, so a
connection stalled behind a slow response delays its next request instead of counting the wait (coordinated
omission); at 1,000 rps over 16 connections every contender here stays far from saturation, where this does not matter.

**Resources**: CPU seconds (utime + stime from \`/proc/<pid>/stat\`) of every process of each proxy, read before and
after each measured run; CPU per request = both proxies' CPU ÷ completed requests. RSS from \`/proc/<pid>/status\`,
sampled every 100 ms during the run (peak reported); idle RSS one second after start-up and two probe requests, and for Node contenders ${IDLE_SETTLED_S} s after start-up (settled). For
nginx the master and its worker are summed.

**Interleaving and repetition**: ${String(r.settings.interleaving)}. ${r.settings.reps} round(s); tables give the median and (min–max).

**Noise**: the machine has ${m.cores} cores shared with other work. 1-minute load average at the start of the measured
runs: median ${loadSpread ? loadSpread.median.toFixed(2) : '–'} (${loadSpread ? `${loadSpread.min.toFixed(2)}–${loadSpread.max.toFixed(2)}` : '–'}); at the start of the bench ${m.loadAvgAtStart.join(' / ')}, at the end ${(m.loadAvgAtEnd ?? []).join(' / ')}.
A load average above ≈ 2 means something else was using the cores while we measured: absolute figures then move by 10–30 %,
the ratios (each round runs every contender back to back) much less.

## Machine and versions

| | |
|---|---|
| CPU | ${m.cpu}, ${m.cores} cores |
| memory | ${m.memoryGiB} GiB |
| OS / kernel | ${m.os} / ${m.kernel} |
${Object.entries(r.versions)
  .map(([k, v]) => `| ${k} | ${v} |`)
  .join('\n')}

## Results per workload

${r.workloads.map((w) => workloadTable(r, w)).join('\n')}
### Idle memory

RSS one second after start-up and two probe requests, and for Node contenders again ${IDLE_SETTLED_S} s after start-up with no traffic meanwhile (settled), MB, median over rounds; the settled figure split into anonymous memory (RssAnon: heap, malloc, stacks) and file-backed pages (RssFile: the binary and its libraries, shared by every process of the same binary on a host).

| contender | 1 s: outbound / inbound | settled: outbound / inbound | settled outbound: anonymous / file-backed |
|---|---|---|---|
${r.contenders
  .filter((c) => c.name !== 'direct')
  .map((c) => {
    const o = idle(r, c.name, 'outbound')
    const i = idle(r, c.name, 'inbound')
    const so = idle(r, c.name, 'outbound', 'settled')
    const si = idle(r, c.name, 'inbound', 'settled')
    const sa = idle(r, c.name, 'outbound', 'settled', 'rssAnonBytes')
    const sf = idle(r, c.name, 'outbound', 'settled', 'rssFileBytes')
    return `| ${c.name} | ${o ? mb(o.median) : '–'} / ${i ? mb(i.median) : '–'} | ${so ? `${mb(so.median)} / ${si ? mb(si.median) : '–'}` : '–'} | ${sa && sa.median ? `${mb(sa.median)} / ${sf ? mb(sf.median) : '–'}` : '–'} |`
  })
  .join('\n')}

## Micro-benchmarks

Standalone scripts from the other issues, run after the contenders; each prints one JSON document, included as is.

${microSection(r, opts)}`)
  if (r.failures.length || r.notes.length) {
    parts.push(`## Failures and notes in this run

${r.failures.map((f) => `- round ${f.rep}, ${f.contender}${f.workload ? `, ${f.workload}` : ' (start-up)'}: \`${f.error.split('\n')[0]!.slice(0, 300)}\``).join('\n')}
${r.notes.map((n) => `- ${n.split('\n')[0]}`).join('\n')}
`)
  }
  parts.push(`## Running it

\`\`\`sh
${APT_LINE}   # the peers and load generators (Debian/Ubuntu)
npm install
npm run bench                # ≈ 25 min: every contender × every workload, 3 interleaved rounds, then the micro-benchmarks → this file + bench/results/<date>.json
npm run bench -- --workloads h2,grpc,tcp,tcp-bulk   # only the HTTP/2, gRPC and TCP workloads
npm run bench -- --quick     # every contender once, 5 s per workload: checks that the suite still works
npm run bench -- --only nginx,remora --workloads throughput --reps 5
npm run bench -- --engine node-http,<other>   # one remora contender per engine (\`remora proxy --engine <name>\`)
npm run bench -- --only remora --workloads throughput --profile   # remora under --cpu-prof, prints the hot spots
\`\`\`

The run refuses to start, naming the missing binaries and this \`apt-get\` line, when nginx, haproxy, wrk or h2load is not installed (or nginx's stream module, for the TCP workloads).
`)
  return parts.join('\n')
}

