// The workloads, Istio's benchmark settings where they apply. Each one drives a topology's entry
// port with an external load generator (C tools where possible, so the client takes little of the
// two shared cores) and returns what the generator saw; the harness measures the proxies around it.
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { BENCH_DIR, HOST, type BenchEnv, type Topology } from './contenders.js'
import { start, type Proc } from './proc.js'

export interface Latency {
  readonly p50: number | null
  readonly p90: number | null
  readonly p99: number | null
  readonly p999: number | null
}

export interface GeneratorResult {
  readonly requests: number
  readonly errors: number
  readonly seconds: number
  readonly rps: number
  readonly latencyUs: Latency
  readonly bytesPerSecond?: number
  /** The command line, for the report's method section. */
  readonly command: string
}

export interface Workload {
  readonly name: 'latency' | 'throughput' | 'large' | 'newconn'
  readonly title: string
  readonly method: string
  /** Discarded run before the measured one (pools filled, JIT warm). 0: none. */
  readonly warmupSeconds: number
  run(t: Topology, env: BenchEnv, seconds: number, tag: string): Promise<GeneratorResult>
}

async function finished(p: Proc, what: string): Promise<string> {
  const code = await p.exited
  if (code !== 0) throw new Error(`${what} exited with ${code}: ${p.stderr.slice(-2000)}${p.stdout.slice(-2000)}`)
  return p.stdout
}

function quantiles(sorted: Float64Array): Latency {
  const q = (p: number): number | null => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!) : null)
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999) }
}

export const LATENCY_RPS = 1000
export const LATENCY_CONNECTIONS = 16

/** Open loop: h2load --rps paces each of 16 HTTP/1.1 connections; percentiles from its per-request log. */
export function latencyWorkload(): Workload {
  return {
    name: 'latency',
    title: `1 KiB responses at ${LATENCY_RPS.toLocaleString('en')} rps over ${LATENCY_CONNECTIONS} connections (open loop)`,
    method: `h2load --h1 -c ${LATENCY_CONNECTIONS} --rps ${LATENCY_RPS / LATENCY_CONNECTIONS} (per connection) -D <s>: the request schedule does not wait for slow responses across connections; percentiles computed from h2load's per-request log (--log-file).`,
    warmupSeconds: 2,
    async run(t, env, seconds, tag) {
      const log = join(env.dir, `h2load-${tag}.log`)
      const args = ['--h1', '-c', String(LATENCY_CONNECTIONS), '-t', '1', '--rps', String(LATENCY_RPS / LATENCY_CONNECTIONS), '-D', String(seconds), '-H', `:authority: ${HOST}`, '--log-file', log, `http://127.0.0.1:${t.entryPort}/1k`]
      const out = await finished(start('h2load', env.bins.h2load!, args), 'h2load')
      const rows = readFileSync(log, 'utf8').split('\n')
      rmSync(log, { force: true })
      const lat: number[] = []
      let errors = 0
      for (const row of rows) {
        if (!row) continue
        const f = row.split('\t')
        if (f[1] === '200') lat.push(Number(f[2]))
        else errors++
      }
      const sorted = Float64Array.from(lat).sort()
      const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored/.exec(out)
      if (failed) errors = Math.max(errors, Number(failed[1]) + Number(failed[2]))
      return { requests: lat.length, errors, seconds, rps: lat.length / seconds, latencyUs: quantiles(sorted), command: `h2load ${args.slice(0, -3).join(' ')} …/1k` }
    },
  }
}

interface WrkSummary {
  requests: number
  durationUs: number
  bytes: number
  errors: { connect: number; read: number; write: number; status: number; timeout: number }
  latencyUs: { p50: number; p90: number; p99: number; p999: number }
}

async function wrk(env: BenchEnv, port: number, path: string, connections: number, seconds: number): Promise<{ s: WrkSummary; command: string }> {
  const args = ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '-H', `Host: ${HOST}`, '-s', join(BENCH_DIR, 'clients', 'wrk-report.lua'), `http://127.0.0.1:${port}${path}`]
  const out = await finished(start('wrk', env.bins.wrk!, args), 'wrk')
  const line = out.split('\n').find((l) => l.startsWith('{"requests"'))
  if (!line) throw new Error(`wrk printed no summary:\n${out}`)
  return { s: JSON.parse(line) as WrkSummary, command: `wrk -t 1 -c ${connections} -d <s> …${path}` }
}

function fromWrk(s: WrkSummary, command: string, withBytes: boolean): GeneratorResult {
  const seconds = s.durationUs / 1e6
  const e = s.errors
  return {
    requests: s.requests,
    errors: e.connect + e.read + e.write + e.status + e.timeout,
    seconds,
    rps: s.requests / seconds,
    latencyUs: { p50: s.latencyUs.p50, p90: s.latencyUs.p90, p99: s.latencyUs.p99, p999: s.latencyUs.p999 },
    ...(withBytes ? { bytesPerSecond: s.bytes / seconds } : {}),
    command,
  }
}

export const THROUGHPUT_CONNECTIONS = 16
export const LARGE_CONNECTIONS = 4

export function throughputWorkload(): Workload {
  return {
    name: 'throughput',
    title: `maximum throughput, 1 KiB responses, ${THROUGHPUT_CONNECTIONS} connections (closed loop)`,
    method: `wrk -t 1 -c ${THROUGHPUT_CONNECTIONS}: each connection sends its next request when the previous response is complete.`,
    warmupSeconds: 2,
    async run(t, env, seconds) {
      const { s, command } = await wrk(env, t.entryPort, '/1k', THROUGHPUT_CONNECTIONS, seconds)
      return fromWrk(s, command, false)
    },
  }
}

export function largeWorkload(): Workload {
  return {
    name: 'large',
    title: `1 MiB responses, ${LARGE_CONNECTIONS} connections (closed loop)`,
    method: `wrk -t 1 -c ${LARGE_CONNECTIONS} on a 1 MiB static file; throughput in MiB/s of response bytes.`,
    warmupSeconds: 1,
    async run(t, env, seconds) {
      const { s, command } = await wrk(env, t.entryPort, '/1m', LARGE_CONNECTIONS, seconds)
      return fromWrk(s, command, true)
    },
  }
}

export const NEWCONN_CONCURRENCY = 16

export function newConnectionWorkload(): Workload {
  return {
    name: 'newconn',
    title: `new connections: every request on a fresh mTLS connection to the inbound proxy (${NEWCONN_CONCURRENCY} concurrent)`,
    method: `bench/clients/newconn.mjs (node): ${NEWCONN_CONCURRENCY} loops, each opening a TLS 1.3 connection with the client certificate (full handshake, no resumption), one GET /1k with \`Connection: close\`, close. It plays the calling sidecar, so only the inbound proxy works; \`direct\` opens plain TCP connections to the app.`,
    warmupSeconds: 1,
    async run(t, env, seconds) {
      const script = join(BENCH_DIR, 'clients', 'newconn.mjs')
      const base = ['--seconds', String(seconds), '--concurrency', String(NEWCONN_CONCURRENCY), '--path', '/1k', '--host', HOST]
      const args =
        t.mtlsPort === null
          ? [script, '--port', String(t.entryPort), ...base]
          : [script, '--port', String(t.mtlsPort), '--tls', '--cert', env.pki.client.cert, '--key', env.pki.client.key, '--ca', env.pki.ca, ...base]
      const out = await finished(start('newconn', process.execPath, args), 'newconn client')
      const r = JSON.parse(out.trim().split('\n').pop()!) as { requests: number; failed: number; seconds: number; rps: number; latencyUs: Latency }
      return { requests: r.requests, errors: r.failed, seconds: r.seconds, rps: r.rps, latencyUs: r.latencyUs, command: `node bench/clients/newconn.mjs --concurrency ${NEWCONN_CONCURRENCY} --tls …` }
    },
  }
}
