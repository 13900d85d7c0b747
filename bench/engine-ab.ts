// A/B of the two forwarding engines (--engine raw vs node-http) in the two-hop mTLS topology:
// wrk → orders sidecar :outbound → mTLS → payments sidecar :inbound → app (1 kB responses).
// One `remora proxy` process per sidecar, both engines' pairs started once and measured in
// interleaved rounds; reports max rps and the pair's CPU µs per request (utime+stime from /proc).
// Access log off and no tracing, so the figures are the engine plus the always-on stages
// (sanitize, route, metrics). Usage: npx tsx bench/engine-ab.ts [--rounds 3] [--seconds 8]
// [--connections 32] [--engines raw,node-http] [--body BYTES (response size, 1024)] [--cpu-prof DIR]
// [--traffic-record (the payments sidecar keeps the traffic record, as with a control plane)]
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createTestPki } from '../test/helpers/pki.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(ROOT, 'cli/main.ts')
type Engine = 'node-http' | 'raw'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    engines: { type: 'string', default: 'node-http,raw' },
    body: { type: 'string', default: '1024' },
    'cpu-prof': { type: 'string' },
    'traffic-record': { type: 'boolean', default: false },
  },
})
const ENGINES = values.engines.split(',').filter((e): e is Engine => e === 'raw' || e === 'node-http')
const PROF = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : []
const ROUNDS = Number(values.rounds)
const SECONDS = Number(values.seconds)
const CONNECTIONS = Number(values.connections)
const CLK_TCK = 100

interface Proc {
  child: ChildProcess
  out: string
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [...PROF, '--import', 'tsx', CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const p: Proc = { child, out: '' }
  child.stdout!.on('data', (c: Buffer) => (p.out += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (p.out += c.toString()))
  return p
}

async function waitStarted(p: Proc): Promise<{ ports: { inbound: number; outbound: number }; engine: string }> {
  const end = Date.now() + 30_000
  for (;;) {
    for (const line of p.out.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        const o = JSON.parse(line) as { event?: string }
        if (o.event === 'sidecar_started') return o as never
      } catch {
        /* partial line */
      }
    }
    if (p.child.exitCode !== null || Date.now() > end) throw new Error(`sidecar did not start:\n${p.out.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return Number(f[11]) + Number(f[12]) // utime + stime (fields 14, 15)
}

function wrk(port: number): Promise<{ requests: number; rps: number; p50: string; p99: string; errors: string }> {
  return new Promise((resolve, reject) => {
    const w = spawn('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '-H', 'Host: payments', `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    w.stdout.on('data', (c: Buffer) => (out += c.toString()))
    w.on('error', reject)
    w.on('exit', () => {
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)
      // From wrk's "Latency Distribution" block (lines that start with the percentile).
      const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '-'
      const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '-'
      const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(out)?.[0] ?? ''
      resolve({ requests, rps, p50, p99, errors })
    })
  })
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main(): Promise<void> {
  const body = Buffer.alloc(Number(values.body), 0x61)
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
    res.end(body)
  })
  app.keepAliveTimeout = 60_000
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  const appAddr = `127.0.0.1:${(app.address() as AddressInfo).port}`

  const pki = await createTestPki()
  const dir = await mkdtemp(join(tmpdir(), 'remora-engine-ab-'))
  for (const sa of ['orders', 'payments']) await pki.writeFiles(dir, sa, await pki.issue(`spiffe://cluster.local/ns/shop/sa/${sa}`))
  const yaml = (sa: string, appAt: string, extra = ''): string => `apiVersion: remora.dev/v1
kind: SidecarConfig
workload: { namespace: shop, serviceAccount: ${sa} }
identity: { certFile: ${sa}.pem, keyFile: ${sa}-key.pem, caFile: ca.pem }
inbound: { port: 0, bind: 127.0.0.1, app: "${appAt}" }
outbound: { port: 0 }
admin: { port: 0 }
accessLog: { enabled: false }
telemetry: { metrics: { port: 0, bind: 127.0.0.1 }${values['traffic-record'] ? ', trafficReport: { enabled: true }' : ''} }
${extra}`
  await writeFile(join(dir, 'payments.yaml'), yaml('payments', appAddr))

  const pairs = new Map<Engine, { orders: Proc; payments: Proc; port: number }>()
  for (const engine of ENGINES) {
    const payments = start(['proxy', '--config', join(dir, 'payments.yaml'), '--engine', engine])
    const p = await waitStarted(payments)
    const file = join(dir, `orders-${engine}.yaml`)
    await writeFile(file, yaml('orders', '127.0.0.1:9', `clusters: [{ name: payments.shop, hosts: [payments], endpoints: ["127.0.0.1:${p.ports.inbound}"], identities: ["spiffe://cluster.local/ns/shop/sa/payments"] }]\n`))
    const orders = start(['proxy', '--config', file, '--engine', engine])
    const o = await waitStarted(orders)
    if (o.engine !== engine || p.engine !== engine) throw new Error(`expected engine ${engine}, got ${o.engine}/${p.engine}`)
    pairs.set(engine, { orders, payments, port: o.ports.outbound })
  }

  const results = new Map<Engine, { rps: number[]; cpu: number[]; p50: string[]; p99: string[] }>()
  for (const e of ENGINES) results.set(e, { rps: [], cpu: [], p50: [], p99: [] })
  // warm-up (JIT, TLS sessions, pools)
  for (const e of ENGINES) await wrk(pairs.get(e)!.port)
  for (let round = 0; round < ROUNDS; round++) {
    for (const e of round % 2 === 0 ? ENGINES : [...ENGINES].reverse()) {
      const pair = pairs.get(e)!
      const pids = [pair.orders.child.pid!, pair.payments.child.pid!]
      const before = pids.map(cpuTicks)
      const r = await wrk(pair.port)
      const after = pids.map(cpuTicks)
      const cpuUs = ((after[0]! - before[0]! + after[1]! - before[1]!) / CLK_TCK) * 1e6
      const res = results.get(e)!
      res.rps.push(r.rps)
      res.cpu.push(cpuUs / r.requests)
      res.p50.push(r.p50)
      res.p99.push(r.p99)
      const mibps = (r.rps * body.length) / (1024 * 1024)
      console.log(`round ${round + 1} ${e.padEnd(9)} ${r.rps.toFixed(0).padStart(6)} rps ${body.length >= 65536 ? `(${mibps.toFixed(0)} MiB/s) ` : ''}  ${(cpuUs / r.requests).toFixed(0).padStart(4)} µs CPU/req (pair)  p50 ${r.p50} p99 ${r.p99} ${r.errors}`)
    }
  }
  console.log('\nmedians:')
  for (const e of ENGINES) {
    const r = results.get(e)!
    console.log(`${e.padEnd(9)} ${median(r.rps).toFixed(0).padStart(6)} rps  ${median(r.cpu).toFixed(0).padStart(4)} µs CPU/req (pair)  p50 ${r.p50.join(' ')}  p99 ${r.p99.join(' ')}`)
  }
  for (const { orders, payments } of pairs.values()) {
    orders.child.kill('SIGTERM')
    payments.child.kill('SIGTERM')
  }
  app.close()
  app.closeAllConnections()
}

await main()
