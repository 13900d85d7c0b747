// TCP load generator, two modes. `pingpong`: `connections` connections, each writing `size` bytes
// and waiting for all of them to come back from the echo app before the next write (closed loop),
// for `seconds`; one round trip is one "request". `bulk`: `connections` connections each send the
// byte 0x01 (the app then streams 64 KiB chunks without end) and count the bytes received.
// Prints one JSON line. Plain JavaScript so it runs on bare `node`.
//
//   node tcp.mjs --port N [--mode pingpong|bulk] [--connections 16] [--seconds 5] [--size 1024]
import net from 'node:net'
import { parseArgs } from 'node:util'

const { values: v } = parseArgs({
  options: {
    port: { type: 'string' },
    mode: { type: 'string', default: 'pingpong' },
    connections: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '5' },
    size: { type: 'string', default: '1024' },
  },
})
const port = Number(v.port)
const seconds = Number(v.seconds)
const size = Number(v.size)
// The first byte is not an upper-case letter, "PRI" or a TLS record: a sidecar that detects the
// protocol sees opaque TCP at once.
const message = Buffer.alloc(size, 'p')
message[0] = 0x00

function connect() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true })
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })
}

let sockets
try {
  sockets = await Promise.all(Array.from({ length: Number(v.connections) }, connect))
} catch (err) {
  console.error(`connect to :${port} failed: ${err.message}`)
  process.exit(1)
}

let failed = 0
const latencies = []
let bytes = 0
const t0 = performance.now()
const deadline = t0 + seconds * 1000

function pingpong(s) {
  return new Promise((resolve) => {
    let got = 0
    let sent = 0
    let ended = false
    const send = () => {
      if (performance.now() >= deadline) return done()
      got = 0
      sent = performance.now()
      s.write(message)
    }
    const done = () => {
      ended = true
      s.removeAllListeners('data')
      s.destroy()
      resolve()
    }
    s.on('data', (c) => {
      got += c.length
      if (got > size) {
        failed++ // more bytes than were sent: not an echo
        return done()
      }
      if (got === size) {
        latencies.push(performance.now() - sent)
        send()
      }
    })
    s.once('close', () => {
      if (!ended) failed++ // closed under us
      resolve()
    })
    s.on('error', () => {})
    send()
  })
}

function bulk(s) {
  return new Promise((resolve) => {
    s.on('data', (c) => {
      if (performance.now() < deadline) bytes += c.length
    })
    let ended = false
    const timer = setTimeout(() => {
      ended = true
      s.destroy()
      resolve()
    }, Math.max(0, deadline - performance.now()))
    s.once('close', () => {
      clearTimeout(timer)
      if (!ended) failed++ // closed under us
      resolve()
    })
    s.on('error', () => {})
    s.write(Buffer.from([0x01]))
  })
}

await Promise.all(sockets.map(v.mode === 'bulk' ? bulk : pingpong))
const elapsed = (performance.now() - t0) / 1000
latencies.sort((a, b) => a - b)
const q = (p) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 1000) : null)
console.log(
  JSON.stringify({
    mode: v.mode,
    requests: v.mode === 'bulk' ? bytes / 2 ** 20 : latencies.length,
    failed,
    seconds: elapsed,
    rps: (v.mode === 'bulk' ? bytes / 2 ** 20 : latencies.length) / elapsed,
    bytesPerSecond: v.mode === 'bulk' ? bytes / elapsed : (latencies.length * size * 2) / elapsed,
    latencyUs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999) },
  }),
)
process.exit(0)
