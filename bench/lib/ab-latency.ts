// A/B latency at a fixed request rate: what one feature (tracing, JWT) adds to a request through a
// sidecar pair, measured so that a few percent can be told from noise on a shared 2-core machine.
//
// Every variant runs in ONE child process (same JIT state, same heap, same CPU placement): the
// variance between two Node processes is larger than what is being measured. The load is
// open-loop (a request every 1/rps s, not waiting for the previous one), timed with hrtime from
// write to last byte, in slices: each round runs every variant for `sliceSeconds`, in an order
// rotated each round, with a pause between slices (so batched work a variant leaves behind, like
// a span export, lands in the pause and not in the next variant's slice). The child reports its
// CPU time at every slice boundary, so CPU per request is the variant's own.
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
  /** The child process's CPU per request while this variant was loaded. */
  cpu_us_per_req: number
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

/** Open-loop load: `rps` requests a second for `seconds`, each timed write → last byte. */
async function load(port: number, rps: number, seconds: number, req: (i: number) => AbRequest, expect: number, record: boolean): Promise<{ lat: number[]; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const lat: number[] = []
  let errors = 0
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const { path, headers } = req(i)
      const t0 = process.hrtime.bigint()
      const r = http.request({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
        res.resume()
        res.on('end', () => {
          if (record) {
            if (res.statusCode === expect) lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
            else errors++
          }
          resolve()
        })
      })
      r.on('error', () => {
        if (record) errors++
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
    inflight.push(one(i))
  }
  await Promise.all(inflight)
  agent.destroy()
  return { lat, errors }
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
    for (const v of o.variants) {
      const w = await load(ports[v]!, o.rps, o.warmupSeconds ?? 2, (i) => o.request(v, i), expect, true)
      if (w.errors > 0) throw new Error(`variant ${v}: ${w.errors} of ${w.errors + w.lat.length} warm-up requests did not get ${expect}`)
      await new Promise((r) => setTimeout(r, gap))
    }
    const acc = new Map(o.variants.map((v) => [v, { lat: [] as number[], errors: 0, cpuUs: 0, p50s: [] as number[], eld: [] as number[], loadEld: [] as number[] }]))
    const loadEld = monitorEventLoopDelay({ resolution: 5 })
    loadEld.enable()
    for (let round = 0; round < o.rounds; round++) {
      const k = round % o.variants.length
      for (const v of [...o.variants.slice(k), ...o.variants.slice(0, k)]) {
        const a = acc.get(v)!
        const c0 = await cpu()
        loadEld.reset()
        const r = await load(ports[v]!, o.rps, o.sliceSeconds, (i) => o.request(v, i), expect, true)
        a.cpuUs += (await cpu()) - c0
        a.eld.push(eldMaxMs)
        a.loadEld.push(loadEld.max / 1e6)
        a.lat.push(...r.lat)
        a.errors += r.errors
        a.p50s.push(quantile([...r.lat].sort((x, y) => x - y), 0.5))
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
        cpu_us_per_req: Math.round((a.cpuUs / Math.max(1, s.length + a.errors)) * 10) / 10,
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
export function added(base: AbStats, variant: AbStats): { p50_ms: number; p50_pct: number; p50_paired_ms: number; p50_paired_pct: number; p99_ms: number; cpu_us_per_req: number } {
  const diffs = variant.p50_by_round_ms.map((v, i) => v - base.p50_by_round_ms[i]!).sort((a, b) => a - b)
  const paired = diffs.length % 2 ? diffs[(diffs.length - 1) / 2]! : (diffs[diffs.length / 2 - 1]! + diffs[diffs.length / 2]!) / 2
  return {
    p50_ms: r3(variant.p50_ms - base.p50_ms),
    p50_pct: Math.round(((variant.p50_ms - base.p50_ms) / base.p50_ms) * 1000) / 10,
    p50_paired_ms: r3(paired),
    p50_paired_pct: Math.round((paired / base.p50_median_of_rounds_ms) * 1000) / 10,
    p99_ms: r3(variant.p99_ms - base.p99_ms),
    cpu_us_per_req: Math.round((variant.cpu_us_per_req - base.cpu_us_per_req) * 10) / 10,
  }
}
