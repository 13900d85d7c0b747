// A/B latency at a fixed request rate: what one feature (tracing, JWT) adds to a request through a
// sidecar pair, measured so that a few percent can be told from noise on a shared 2-core machine.
//
// Every variant runs in ONE child process (same JIT state, same heap, same CPU placement): the
// variance between two Node processes is larger than what is being measured. The load is
// open-loop (a request every 1/rps s, not waiting for the previous one), timed with hrtime from
// write to last byte, in slices: each round runs every variant for `sliceSeconds`, in an order
// rotated each round, with a pause between slices (so batched work a variant leaves behind, like
// a span export, lands in the pause and not in the next variant's slice). The child reports its
// CPU time at every slice boundary, so CPU per request is the variant's own. Or, with `interleave`,
// the variants share every slice request by request (see AbOptions.interleave).
import { spawn } from 'node:child_process'
import http from 'node:http'
import { monitorEventLoopDelay } from 'node:perf_hooks'

export interface AbRequest {
  readonly path: string
  readonly headers: Record<string, string>
}

export interface AbOptions {
  /** The bench script, spawned as `node --import tsx <script> --serve <serveArgs…>`. */
  readonly script: string
  readonly serveArgs: readonly string[]
  readonly variants: readonly string[]
  readonly rps: number
  readonly sliceSeconds: number
  readonly rounds: number
  /** Pause after each slice (ms). */
  readonly gapMs?: number
  /** Warm-up per variant before the first round (s). */
  readonly warmupSeconds?: number
  /** The i-th request of a variant's slice. */
  request(variant: string, i: number): AbRequest
  /**
   * Interleave the variants request by request instead of giving each its own slice: every variant
   * still gets `rps` (the process gets k × rps), and every variant sees the machine in the same
   * state at the same moments. The precise way to compare per-request costs; wrong for costs that land outside the
   * request (a span export), which interleaving spreads over every variant.
   */
  readonly interleave?: boolean
  /** Status a request must get to count as a sample (default 200); others count as errors. */
  readonly expectStatus?: number
}

export interface AbStats {
  n: number
  errors: number
  p50_ms: number
  p90_ms: number
  p99_ms: number
  mean_ms: number
  /** The median of the per-round p50s: robust to one disturbed slice. */
  p50_median_of_rounds_ms: number
  p50_by_round_ms: number[]
  /** The child process's CPU per request while this variant was loaded (null when interleaved: the CPU is shared). */
  cpu_us_per_req: number | null
  /** The sidecars' process: the longest event-loop stall in each of this variant's slices. */
  event_loop_delay_max_ms_by_round: number[]
  /** The same for the load generator (this process): a stall here delays the timestamps, not the sidecars. */
  load_generator_event_loop_delay_max_ms_by_round: number[]
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000

function quantile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
}

/** Child side: announce the variants' ports, then answer `cpu` on stdin with this process's CPU time. */
export function serveAb(ports: Record<string, number>): void {
  const eld = monitorEventLoopDelay({ resolution: 5 })
  eld.enable()
  process.stdout.write(JSON.stringify({ ports }) + '\n')
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (d: string) => {
    for (const _ of d.split('\n').filter((l) => l === 'cpu')) {
      const u = process.cpuUsage()
      process.stdout.write(JSON.stringify({ cpuUs: u.user + u.system, eldMaxMs: eld.max / 1e6 }) + '\n')
      eld.reset()
    }
  })
  process.stdin.on('end', () => process.exit(0))
}

/**
 * Open-loop load: `rps` requests a second for `seconds`, each timed write → last byte. Request i
 * goes to target `pick(i)`; results come back per target.
 */
async function load(targets: readonly { port: number; request(i: number): AbRequest }[], pick: (i: number) => number, rps: number, seconds: number, expect: number): Promise<{ lat: number[]; errors: number }[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const out = targets.map(() => ({ lat: [] as number[], errors: 0 }))
  const sent = targets.map(() => 0)
  const one = (t: number): Promise<void> =>
    new Promise((resolve) => {
      const { path, headers } = targets[t]!.request(sent[t]!++)
      const acc = out[t]!
      const t0 = process.hrtime.bigint()
      const r = http.request({ host: '127.0.0.1', port: targets[t]!.port, path, headers, agent }, (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode === expect) acc.lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
          else acc.errors++
          resolve()
        })
      })
      r.on('error', () => {
        acc.errors++
        resolve()
      })
      r.end()
    })
  const total = Math.round(seconds * rps)
  const start = performance.now()
  const inflight: Promise<void>[] = []
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rps - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    inflight.push(one(pick(i)))
  }
  await Promise.all(inflight)
  agent.destroy()
  return out
}

export async function runAb(o: AbOptions): Promise<Record<string, AbStats>> {
  const child = spawn(process.execPath, ['--import', 'tsx', o.script, '--serve', ...o.serveArgs], { stdio: ['pipe', 'pipe', 'inherit'] })
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
  const exited = new Promise((r) => child.once('exit', r))
  try {
    const { ports } = JSON.parse(await nextLine()) as { ports: Record<string, number> }
    let eldMaxMs = 0
    const cpu = async (): Promise<number> => {
      child.stdin.write('cpu\n')
      const m = JSON.parse(await nextLine()) as { cpuUs: number; eldMaxMs: number }
      eldMaxMs = m.eldMaxMs
      return m.cpuUs
    }
    const expect = o.expectStatus ?? 200
    const gap = o.gapMs ?? 1200
    const targets = o.variants.map((v) => ({ port: ports[v]!, request: (i: number) => o.request(v, i) }))
    for (const [t, v] of o.variants.entries()) {
      const [w] = await load([targets[t]!], () => 0, o.rps, o.warmupSeconds ?? 2, expect)
      if (w!.errors > 0) throw new Error(`variant ${v}: ${w!.errors} of ${w!.errors + w!.lat.length} warm-up requests did not get ${expect}`)
      await new Promise((r) => setTimeout(r, gap))
    }
    const acc = new Map(o.variants.map((v) => [v, { lat: [] as number[], errors: 0, cpuUs: 0, reqs: 0, p50s: [] as number[], eld: [] as number[], loadEld: [] as number[] }]))
    const loadEld = monitorEventLoopDelay({ resolution: 5 })
    loadEld.enable()
    const k = o.variants.length
    for (let round = 0; round < o.rounds; round++) {
      // Slices: each variant alone in turn, order rotated each round. Interleaved: one slice per
      // round, request i to variant (i + round) mod k.
      const slices: number[][] = o.interleave ? [o.variants.map((_, t) => t)] : o.variants.map((_, t) => [(t + round) % k])
      for (const members of slices) {
        const c0 = await cpu()
        loadEld.reset()
        const rs = await load(
          members.map((t) => targets[t]!),
          members.length === 1 ? () => 0 : (i) => (i + round) % members.length,
          o.rps * members.length,
          o.sliceSeconds,
          expect,
        )
        const cpuUs = (await cpu()) - c0
        const reqs = rs.reduce((n, r) => n + r.lat.length + r.errors, 0)
        members.forEach((t, j) => {
          const a = acc.get(o.variants[t]!)!
          const r = rs[j]!
          // Interleaved, the process's CPU is shared: each variant is charged per request alike.
          a.cpuUs += (cpuUs * (r.lat.length + r.errors)) / Math.max(1, reqs)
          a.reqs += r.lat.length + r.errors
          a.eld.push(eldMaxMs)
          a.loadEld.push(loadEld.max / 1e6)
          a.lat.push(...r.lat)
          a.errors += r.errors
          a.p50s.push(quantile([...r.lat].sort((x, y) => x - y), 0.5))
        })
        await new Promise((res) => setTimeout(res, gap))
      }
    }
    const out: Record<string, AbStats> = {}
    for (const [v, a] of acc) {
      const s = [...a.lat].sort((x, y) => x - y)
      const p50s = [...a.p50s].sort((x, y) => x - y)
      out[v] = {
        n: s.length,
        errors: a.errors,
        p50_ms: r3(quantile(s, 0.5)),
        p90_ms: r3(quantile(s, 0.9)),
        p99_ms: r3(quantile(s, 0.99)),
        mean_ms: r3(s.reduce((x, y) => x + y, 0) / s.length),
        p50_median_of_rounds_ms: r3(quantile(p50s, 0.5)),
        p50_by_round_ms: a.p50s.map(r3),
        cpu_us_per_req: o.interleave ? null : Math.round((a.cpuUs / Math.max(1, a.reqs)) * 10) / 10,
        event_loop_delay_max_ms_by_round: a.eld.map((x) => Math.round(x * 10) / 10),
        load_generator_event_loop_delay_max_ms_by_round: a.loadEld.map((x) => Math.round(x * 10) / 10),
      }
    }
    return out
  } finally {
    child.stdin.end()
    await exited
  }
}

/**
 * What `variant` adds over `base`: latency in ms and %, CPU per request in µs. `p50_paired_*` is the
 * median over rounds of the difference between the two variants' p50 in the same round (slices
 * next to each other in time): the figure least moved by a machine that speeds up or slows down.
 */
export function added(base: AbStats, variant: AbStats): { p50_ms: number; p50_pct: number; p50_paired_ms: number; p50_paired_pct: number; p99_ms: number; cpu_us_per_req: number | null } {
  const diffs = variant.p50_by_round_ms.map((v, i) => v - base.p50_by_round_ms[i]!).sort((a, b) => a - b)
  const paired = diffs.length % 2 ? diffs[(diffs.length - 1) / 2]! : (diffs[diffs.length / 2 - 1]! + diffs[diffs.length / 2]!) / 2
  return {
    p50_ms: r3(variant.p50_ms - base.p50_ms),
    p50_pct: Math.round(((variant.p50_ms - base.p50_ms) / base.p50_ms) * 1000) / 10,
    p50_paired_ms: r3(paired),
    p50_paired_pct: Math.round((paired / base.p50_median_of_rounds_ms) * 1000) / 10,
    p99_ms: r3(variant.p99_ms - base.p99_ms),
    cpu_us_per_req: variant.cpu_us_per_req === null || base.cpu_us_per_req === null ? null : Math.round((variant.cpu_us_per_req - base.cpu_us_per_req) * 10) / 10,
  }
}
