// New-connection load generator: every request on a fresh connection, `concurrency` loops for
// `seconds`. With --tls it is a mesh peer: a full TLS 1.3 handshake with the client certificate
// (no session resumption) to the inbound proxy, one request, close. Prints one JSON line.
// Plain JavaScript so it runs on bare `node` (no loader in the measuring process).
//
//   node newconn.mjs --port N [--tls --cert F --key F --ca F] [--concurrency 16] [--seconds 5] [--path /1k] [--host app.bench]
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { parseArgs } from 'node:util'

const { values: v } = parseArgs({
  options: {
    port: { type: 'string' },
    tls: { type: 'boolean', default: false },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '5' },
    path: { type: 'string', default: '/1k' },
    host: { type: 'string', default: 'app.bench' },
  },
})
const port = Number(v.port)
const seconds = Number(v.seconds)
const request = Buffer.from(`GET ${v.path} HTTP/1.1\r\nHost: ${v.host}\r\nConnection: close\r\n\r\n`)
const secureContext = v.tls ? tls.createSecureContext({ cert: readFileSync(v.cert), key: readFileSync(v.key), ca: readFileSync(v.ca), minVersion: 'TLSv1.3' }) : null

const latencies = []
let ok = 0
let failed = 0
const statuses = {}
const deadline = performance.now() + seconds * 1000

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now()
    let head = ''
    let done = false
    const finish = (good) => {
      if (done) return
      done = true
      if (good) {
        ok++
        latencies.push(performance.now() - t0)
      } else failed++
      resolve()
    }
    const sock = secureContext
      ? tls.connect({ host: '127.0.0.1', port, secureContext, servername: undefined, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined })
      : net.connect({ host: '127.0.0.1', port })
    sock.setNoDelay(true)
    sock.once(secureContext ? 'secureConnect' : 'connect', () => sock.write(request))
    sock.on('data', (c) => {
      if (head.length < 16) head += c.toString('latin1', 0, Math.min(c.length, 16))
    })
    sock.once('end', () => {
      const status = head.slice(9, 12)
      statuses[status] = (statuses[status] ?? 0) + 1
      finish(status === '200')
      sock.destroy()
    })
    sock.once('error', () => finish(false))
    sock.once('close', () => finish(false))
  })
}

async function loop() {
  while (performance.now() < deadline) await once()
}

const t0 = performance.now()
await Promise.all(Array.from({ length: Number(v.concurrency) }, loop))
const elapsed = (performance.now() - t0) / 1000
latencies.sort((a, b) => a - b)
const q = (p) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 1000) : null)
console.log(JSON.stringify({ requests: ok, failed, statuses, seconds: elapsed, rps: ok / elapsed, latencyUs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999) } }))
