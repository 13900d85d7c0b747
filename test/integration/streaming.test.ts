import http from 'node:http'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { createTestPki } from '../helpers/pki.js'
import { runRemora, type Child } from '../helpers/process.js'
import { TEST_ENGINE } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// Two real `remora proxy` processes; the sidecars' own RSS is sampled from /proc while 100 MiB
// flows each way. Nothing is buffered whole, so RSS must grow by far less than the body size. Each
// direction gets a fresh pair: RSS rarely shrinks, so a pair that already carried 100 MiB the other
// way would hide whatever this direction adds.
//
// What the limit guards: the body bytes in flight are a few MiB (back-pressure on every hop); the
// rest is the read buffers Node allocates per socket read and V8 frees only when it collects the
// young generation. Without proxy/engines/common/read-buffers.ts asking for that every 8 MiB, Node 26 (V8 14)
// let them pile up to its 64 MiB external-memory soft limit: 57–70 MiB of growth per sidecar.
const MiB = 1024 * 1024
const LIMIT = 64 * MiB
let app: Upstream
let pki: Awaited<ReturnType<typeof createTestPki>>
let dir = ''
let orders: Child | undefined
let payments: Child | undefined
let outboundPort = 0

function sampler(children: Child[]): { stop(): number[] } {
  const base = children.map((c) => c.rssBytes())
  const peak = [...base]
  const t = setInterval(() => children.forEach((c, i) => (peak[i] = Math.max(peak[i]!, c.rssBytes()))), 10)
  return {
    stop() {
      clearInterval(t)
      return peak.map((p, i) => p - base[i]!)
    },
  }
}

beforeAll(async () => {
  pki = await createTestPki()
  dir = await mkdtemp(join(tmpdir(), 'remora-stream-'))
  app = await startUpstream((req, res) => {
    if (req.url === '/upload') {
      let n = 0
      req.on('data', (c: Buffer) => (n += c.length))
      req.on('end', () => res.end(String(n)))
      return
    }
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    let left = (100 * MiB) / chunk.length
    res.writeHead(200, { 'content-length': 100 * MiB })
    const pump = (): void => {
      while (left > 0) {
        left--
        if (!res.write(chunk)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  })
  for (const sa of ['orders', 'payments']) await pki.writeFiles(dir, sa, await pki.issue(`spiffe://cluster.local/ns/shop/sa/${sa}`))
}, 60_000)

afterAll(async () => {
  await app?.close()
})

/** A fresh orders → payments pair in front of the app, warmed up (connections, TLS sessions, JIT). */
beforeEach(async () => {
  const base = (sa: string, extra: string): string => `apiVersion: remora.dev/v1
kind: SidecarConfig
workload: { namespace: shop, serviceAccount: ${sa} }
identity: { certFile: ${sa}.pem, keyFile: ${sa}-key.pem, caFile: ca.pem }
inbound: { port: 0, bind: 127.0.0.1, app: "${sa === 'payments' ? app.address : '127.0.0.1:9'}" }
outbound: { port: 0 }
admin: { port: 0 }
accessLog: { enabled: false }
${extra}`
  await writeFile(join(dir, 'payments.yaml'), base('payments', ''))
  const engine = TEST_ENGINE !== undefined ? ['--engine', TEST_ENGINE] : []
  payments = runRemora(['proxy', '--config', join(dir, 'payments.yaml'), ...engine])
  const p = (await payments.waitForLine((o) => o.event === 'sidecar_started')) as { ports: { inbound: number }; engine: string }
  if (TEST_ENGINE !== undefined) expect(p.engine).toBe(TEST_ENGINE)
  await writeFile(
    join(dir, 'orders.yaml'),
    base('orders', `clusters: [{ name: payments.shop, hosts: [payments], endpoints: ["127.0.0.1:${p.ports.inbound}"], identities: ["spiffe://cluster.local/ns/shop/sa/payments"] }]\n`),
  )
  orders = runRemora(['proxy', '--config', join(dir, 'orders.yaml'), ...engine])
  const o = (await orders.waitForLine((x) => x.event === 'sidecar_started')) as { ports: { outbound: number } }
  outboundPort = o.ports.outbound
  for (let i = 0; i < 3; i++) await get('/upload')
}, 60_000)

afterEach(async () => {
  await orders?.stop()
  await payments?.stop()
  orders = payments = undefined
})

function get(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: outboundPort, path, headers: { host: 'payments' }, agent: false }, (r) => {
        let n = 0
        r.on('data', (c: Buffer) => (n += c.length))
        r.on('end', () => resolve(n))
      })
      .on('error', reject)
  })
}

describe('streaming through a real sidecar pair', () => {
  test('a 100 MiB upload streams through; each sidecar grows by less than 64 MiB RSS', async () => {
    const s = sampler([orders!, payments!])
    const chunk = Buffer.alloc(256 * 1024, 0x62)
    const total = 100 * MiB
    const reply = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: outboundPort, method: 'POST', path: '/upload', headers: { host: 'payments', 'content-length': total }, agent: false }, (r) => {
        let d = ''
        r.on('data', (c: Buffer) => (d += c))
        r.on('end', () => resolve(d))
      })
      req.on('error', reject)
      pipeline(
        Readable.from(
          (function* () {
            for (let i = 0; i < total / chunk.length; i++) yield chunk
          })(),
        ),
        req,
      ).catch(reject)
    })
    const growth = s.stop()
    expect(reply).toBe(String(total))
    for (const g of growth) expect(g).toBeLessThan(LIMIT)
  })

  test('a 100 MiB download streams through; each sidecar grows by less than 64 MiB RSS', async () => {
    const s = sampler([orders!, payments!])
    const n = await get('/download')
    const growth = s.stop()
    expect(n).toBe(100 * MiB)
    for (const g of growth) expect(g).toBeLessThan(LIMIT)
  })
})
