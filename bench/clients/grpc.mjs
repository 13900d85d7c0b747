// gRPC load generator: `connections` grpc-js channels (each its own HTTP/2 connection), `concurrency`
// unary bench.Echo/Echo calls in flight in all, each loop sending its next call when the previous
// one completes (closed loop), for `seconds`. A call is good when its status is OK and the 1 KiB
// echo comes back whole; any other status is an error. Prints one JSON line.
// Plain JavaScript so it runs on bare `node` (no loader in the measuring process).
//
//   node grpc.mjs --port N [--authority app.bench] [--connections 4] [--concurrency 64] [--seconds 5] [--size 1024]
import { parseArgs } from 'node:util'
import grpc from '@grpc/grpc-js'

const { values: v } = parseArgs({
  options: {
    port: { type: 'string' },
    authority: { type: 'string', default: 'app.bench' },
    connections: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '5' },
    size: { type: 'string', default: '1024' },
  },
})
const raw = (b) => b
const ECHO_SERVICE = {
  Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
}
const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo')
const payload = Buffer.alloc(Number(v.size), 'g')
const clients = Array.from(
  { length: Number(v.connections) },
  () =>
    new EchoClient(`ipv4:127.0.0.1:${v.port}`, grpc.credentials.createInsecure(), {
      'grpc.default_authority': v.authority,
      // one connection per client: no subchannel sharing between them
      'grpc.use_local_subchannel_pool': 1,
    }),
)

// Connected before the clock starts (a refused connection shows up here, not as timeouts).
await Promise.all(
  clients.map((c) => new Promise((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(new Error(`channel not ready: ${err.message}`)) : resolve())))),
).catch((err) => {
  console.error(err.message)
  process.exit(1)
})

const latencies = []
let failed = 0
const statuses = {}
const seconds = Number(v.seconds)
const deadline = performance.now() + seconds * 1000

function once(client) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    client.Echo(payload, { deadline: Date.now() + 10_000 }, (err, res) => {
      const code = err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK
      const name = grpc.status[code] ?? String(code)
      statuses[name] = (statuses[name] ?? 0) + 1
      if (!err && res && res.length === payload.length) latencies.push(performance.now() - t0)
      else failed++
      resolve()
    })
  })
}

async function loop(client) {
  while (performance.now() < deadline) await once(client)
}

const t0 = performance.now()
await Promise.all(Array.from({ length: Number(v.concurrency) }, (_, i) => loop(clients[i % clients.length])))
const elapsed = (performance.now() - t0) / 1000
for (const c of clients) c.close()
latencies.sort((a, b) => a - b)
const q = (p) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 1000) : null)
console.log(JSON.stringify({ requests: latencies.length, failed, statuses, seconds: elapsed, rps: latencies.length / elapsed, latencyUs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999) } }))
process.exit(0)
