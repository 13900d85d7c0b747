// The traffic record's cost per request in isolation (what `record()` adds to the access-log tee),
// in ns per call on this machine: engine-ab's A/B is too coarse for a few hundred ns. Each case
// makes a fresh path string per request, as a front does, and subtracts the loop without record().
// Usage: npx tsx bench/traffic-record.ts [--n 2000000]
import { parseArgs } from 'node:util'
import type { AccessLogEntry } from '../proxy/telemetry/access-log-entry.js'
import { createTrafficRecorder } from '../proxy/traffic/index.js'

const { values } = parseArgs({ options: { n: { type: 'string', default: '2000000' } } })
const N = Number(values.n)

const base: AccessLogEntry = {
  start_time: '', direction: 'inbound', method: 'GET', authority: 'orders', path: '/', protocol: 'HTTP/1.1', response_code: 200, response_flags: '-', error_code: null,
  duration_ms: 2.5, upstream_service_time_ms: 2, bytes_received: 0, bytes_sent: 1024, upstream_cluster: 'inbound|8080||', upstream_host: '127.0.0.1:8080',
  downstream_remote_address: '127.0.0.1:5000', downstream_peer_principal: 'spiffe://cluster.local/ns/shop/sa/frontend', connection_security_policy: 'mutual_tls',
  request_id: '-', authz_decision: 'ALLOW', authz_policy: 'shop/allow-frontend', authz_reason: 'allow by shop/allow-frontend rules[0]', authz_rule: 0, trace_id: null, span_id: null,
}
const SOURCES = Array.from({ length: 20 }, (_, i) => `spiffe://cluster.local/ns/shop/sa/caller-${i}`)
const PATHS = Array.from({ length: 100 }, (_, i) => `/api/resource-${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}/items`)

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1')
const ROOT = [latin1('/')]
const CACHED = PATHS.map(latin1)
const cases: { name: string; source: (i: number) => string; path: (i: number) => string }[] = [
  { name: 'one edge, path "/" (engine-ab)', source: () => base.downstream_peer_principal!, path: () => ROOT[0]!.toString('latin1') },
  { name: '2000 edges (20 sources x 100 paths), nothing to replace', source: (i) => SOURCES[i % 20]!, path: (i) => CACHED[Math.floor(i / 20) % 100]!.toString('latin1') },
  { name: 'a new ID in every path (/orders/<n>): a new template string', source: () => base.downstream_peer_principal!, path: (i) => latin1(`/orders/${1_000_000 + i}`).toString('latin1') },
]

for (const c of cases) {
  const r = createTrafficRecorder({ defaultPort: () => 8080, clock: { now: () => Date.now() } })
  // A fresh path string per request (as a front slices it from the socket's buffer), in both loops.
  const run = (withRecord: boolean): number => {
    const t0 = process.hrtime.bigint()
    let sink = 0
    for (let i = 0; i < N; i++) {
      const e = { ...base, downstream_peer_principal: c.source(i), path: c.path(i) }
      if (withRecord) r.record(e)
      else sink += e.path.length
    }
    if (sink === -1) console.log(sink)
    return Number(process.hrtime.bigint() - t0) / N
  }
  for (let w = 0; w < 2; w++) {
    run(true)
    run(false)
    r.take()
  }
  const withNs = run(true)
  const without = run(false)
  console.log(`${c.name.padEnd(66)} ${(withNs - without).toFixed(0).padStart(5)} ns/request  (edges ${r.size}, dropped ${r.take().dropped})`)
}
