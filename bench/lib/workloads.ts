// The workloads, Istio's benchmark settings where they apply. Each one drives a topology's entry
// port with an external load generator (C tools where possible, so the client takes little of the
// two shared cores) and returns what the generator saw; the harness measures the proxies around it.
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { authorityFor, BENCH_DIR, HOST, type BenchEnv, type Topology } from './contenders.js'
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

export const WORKLOAD_NAMES = ['latency', 'throughput', 'large', 'newconn', 'h2', 'grpc', 'tcp', 'tcp-bulk'] as const

export interface Workload {
  readonly name: (typeof WORKLOAD_NAMES)[number]
  readonly title: string
  readonly method: string
  /** The entry port this workload drives, null when the contender has none (the workload is n/a for it). Absent: the HTTP/1.1 entry. */
  readonly entry?: (t: Topology) => number | null
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

// ---------------------------------------------------------------------------------------------
// HTTP/2, gRPC and TCP (issue 15): each through the contender's h2c or TCP entry.

export const H2_CONNECTIONS = 4
export const H2_STREAMS = 16

/** Rows of h2load's --log-file (start µs, status, duration µs): latencies of 200s, errors otherwise. */
function h2loadLog(log: string, stdout: string): { lat: Float64Array; errors: number } {
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
  const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored/.exec(stdout)
  if (failed) errors = Math.max(errors, Number(failed[1]) + Number(failed[2]))
  return { lat: Float64Array.from(lat).sort(), errors }
}

/** Closed loop over h2c: h2load with 4 connections × 16 concurrent streams, GET /1k from the app's h2c server. */
export function h2Workload(): Workload {
  return {
    name: 'h2',
    title: `HTTP/2 (h2c in, h2 over mTLS between the proxies), 1 KiB responses, ${H2_CONNECTIONS} connections × ${H2_STREAMS} streams (closed loop)`,
    method: `h2load -c ${H2_CONNECTIONS} -m ${H2_STREAMS} -D <s> (h2c prior knowledge) to the contender's h2c entry; \`:authority\` names the app's h2c port (\`app.bench:<port>\`, how remora routes it); each stream sends its next request when its response is complete; percentiles from h2load's per-request log. The app is the same nginx on an h2c port.`,
    warmupSeconds: 1,
    entry: (t) => t.h2Port,
    async run(t, env, seconds, tag) {
      const log = join(env.dir, `h2load-h2-${tag}.log`)
      const args = ['-c', String(H2_CONNECTIONS), '-m', String(H2_STREAMS), '-t', '1', '-D', String(seconds), '-H', `:authority: ${authorityFor(env.app.h2c)}`, '--log-file', log, `http://127.0.0.1:${t.h2Port}/1k`]
      const out = await finished(start('h2load', env.bins.h2load!, args), 'h2load')
      const { lat, errors } = h2loadLog(log, out)
      if (lat.length === 0) throw new Error(`h2load completed no request: ${out.slice(-1500)}`)
      return { requests: lat.length, errors, seconds, rps: lat.length / seconds, latencyUs: quantiles(lat), command: `h2load ${args.slice(0, -3).join(' ')} …/1k` }
    },
  }
}

export const GRPC_CONNECTIONS = 4
export const GRPC_CONCURRENCY = 16

interface ClientSummary {
  requests: number
  failed: number
  seconds: number
  rps: number
  bytesPerSecond?: number
  latencyUs: Latency
  statuses?: Record<string, number>
}

function lastJsonLine(out: string, what: string): ClientSummary {
  const line = out.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(line) as ClientSummary
  } catch {
    throw new Error(`${what} printed no summary: ${out.slice(-1500)}`)
  }
}

/** Closed loop of unary gRPC calls from a grpc-js client (bench/clients/grpc.mjs). */
export function grpcWorkload(): Workload {
  return {
    name: 'grpc',
    title: `gRPC unary calls, 1 KiB request and response, ${GRPC_CONCURRENCY} in flight over ${GRPC_CONNECTIONS} connections (closed loop)`,
    method: `bench/clients/grpc.mjs (node, @grpc/grpc-js): ${GRPC_CONNECTIONS} channels (one HTTP/2 connection each, h2c) to the contender's h2c entry, ${GRPC_CONCURRENCY} loops each making its next \`bench.Echo/Echo\` call when the previous one returns; the app is a grpc-js server echoing the 1 KiB message (raw Buffer (de)serializers, no .proto). A status other than OK, or a short reply, is an error. The client is Node, so on two cores it limits the rate for every contender: compare the proxies' CPU per call.`,
    warmupSeconds: 1,
    entry: (t) => t.grpcPort,
    async run(t, env, seconds) {
      const script = join(BENCH_DIR, 'clients', 'grpc.mjs')
      const args = [script, '--port', String(t.grpcPort), '--authority', authorityFor(env.app.grpc), '--connections', String(GRPC_CONNECTIONS), '--concurrency', String(GRPC_CONCURRENCY), '--seconds', String(seconds), '--size', '1024']
      const out = await finished(start('grpc client', process.execPath, args), 'grpc client')
      const r = lastJsonLine(out, 'grpc client')
      if (r.failed > 0 && r.statuses) console.error(`    grpc statuses: ${JSON.stringify(r.statuses)}`)
      return { requests: r.requests, errors: r.failed, seconds: r.seconds, rps: r.rps, latencyUs: r.latencyUs, command: `node bench/clients/grpc.mjs --connections ${GRPC_CONNECTIONS} --concurrency ${GRPC_CONCURRENCY} --size 1024` }
    },
  }
}

export const TCP_CONNECTIONS = 16
export const TCP_BULK_CONNECTIONS = 4

async function tcpClient(t: Topology, env: BenchEnv, seconds: number, mode: 'pingpong' | 'bulk', connections: number): Promise<ClientSummary> {
  const script = join(BENCH_DIR, 'clients', 'tcp.mjs')
  const args = [script, '--port', String(t.tcpPort), '--mode', mode, '--connections', String(connections), '--seconds', String(seconds), '--size', '1024']
  const out = await finished(start('tcp client', process.execPath, args), 'tcp client')
  return lastJsonLine(out, 'tcp client')
}

/** 1 KiB request/response ping-pong on long-lived TCP connections: one round trip per "request". */
export function tcpWorkload(): Workload {
  return {
    name: 'tcp',
    title: `TCP through the pair (mTLS between the proxies), 1 KiB ping-pong on ${TCP_CONNECTIONS} connections (closed loop)`,
    method: `bench/clients/tcp.mjs --mode pingpong (node): ${TCP_CONNECTIONS} connections to the contender's TCP entry, each writing 1 KiB and waiting for the app (a node echo server) to send all of it back before the next write; one round trip counts as one request. The proxies see opaque bytes (remora: a local bind port for the cluster's \`tcp\` port, ALPN \`remora-tcp\`, L4 authorization).`,
    warmupSeconds: 1,
    entry: (t) => t.tcpPort,
    async run(t, env, seconds) {
      const r = await tcpClient(t, env, seconds, 'pingpong', TCP_CONNECTIONS)
      return { requests: r.requests, errors: r.failed, seconds: r.seconds, rps: r.rps, latencyUs: r.latencyUs, command: `node bench/clients/tcp.mjs --mode pingpong --connections ${TCP_CONNECTIONS} --size 1024` }
    },
  }
}

/** One-way bulk transfer app → client: MiB/s, and CPU per MiB (a MiB counts as one "request"). */
export function tcpBulkWorkload(): Workload {
  return {
    name: 'tcp-bulk',
    title: `TCP bulk transfer through the pair, app → client on ${TCP_BULK_CONNECTIONS} connections`,
    method: `bench/clients/tcp.mjs --mode bulk (node): ${TCP_BULK_CONNECTIONS} connections to the contender's TCP entry each send one byte, then the app writes 64 KiB chunks as fast as the connection takes them; throughput in MiB/s of bytes received, proxy CPU per MiB.`,
    warmupSeconds: 1,
    entry: (t) => t.tcpPort,
    async run(t, env, seconds) {
      const r = await tcpClient(t, env, seconds, 'bulk', TCP_BULK_CONNECTIONS)
      return { requests: r.requests, errors: r.failed, seconds: r.seconds, rps: r.rps, latencyUs: r.latencyUs, bytesPerSecond: r.bytesPerSecond ?? 0, command: `node bench/clients/tcp.mjs --mode bulk --connections ${TCP_BULK_CONNECTIONS}` }
    },
  }
}
