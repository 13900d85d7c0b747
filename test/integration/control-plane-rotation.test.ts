import http from 'node:http'
import tls from 'node:tls'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { plainRequest, until } from '../helpers/mesh.js'
import { startFrontendOrders, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// frontend → (mTLS) → orders, both bootstrapped from a control plane that issues 10 s certificates:
// each sidecar renews at 70 % (7 s) while a steady request loop runs through the pair.
let cp: TestControlPlane
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar

beforeAll(async () => {
  cp = await startTestControlPlane({ certTtlMs: 10_000 })
  app = await startUpstream()
  ;({ orders, frontend } = await startFrontendOrders(cp, app.address))
}, 60_000)

afterAll(async () => {
  await frontend?.close()
  await orders?.close()
  await cp?.close()
  await app?.close()
})

async function certSerial(admin: number): Promise<string> {
  const r = await plainRequest(admin, { path: '/certs' })
  return (JSON.parse(r.body) as { serial: string }).serial
}

/** The certificate the inbound listener presents to a new handshake. */
function presentedSerial(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' }, () => {
      const serial = s.getPeerCertificate().serialNumber
      s.destroy()
      resolve(serial)
    })
    s.on('error', reject)
  })
}

test('rotation: with 10 s certificates both sidecars renew twice under steady traffic, with no failed request', async () => {
  const renewed = { orders: 0, frontend: 0 }
  orders.client.events.on('renewed', () => renewed.orders++)
  frontend.client.events.on('renewed', () => renewed.frontend++)
  const serials = { orders: new Set([await certSerial(orders.admin)]), frontend: new Set([await certSerial(frontend.admin)]) }
  const outcomes: string[] = []
  let stop = false
  // Two loops: a fresh downstream connection per request, and one keep-alive connection; both go
  // through frontend's outbound pool and the mTLS hop to orders.
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const loop = async (agent: http.Agent | false): Promise<void> => {
    while (!stop) {
      const r = await new Promise<string>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: frontend.outbound, path: '/orders', headers: { host: 'orders.shop' }, agent }, (res) => {
          res.resume()
          res.on('end', () => resolve(`${res.statusCode} ${String(res.headers['x-remora-response-flags'] ?? '')}`.trim()))
          res.on('error', (e) => resolve(`error ${e.message}`))
        })
        req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`))
        req.end()
      })
      outcomes.push(r)
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  const loops = [loop(false), loop(keepAlive)]
  const poll = setInterval(() => {
    void certSerial(orders.admin).then((s) => serials.orders.add(s), () => {})
    void certSerial(frontend.admin).then((s) => serials.frontend.add(s), () => {})
  }, 200)
  try {
    await until(() => renewed.orders >= 2 && renewed.frontend >= 2, 30_000, 'two renewals at each sidecar')
    // Let traffic run a little on the renewed certificates, and read the serial once more.
    await new Promise((r) => setTimeout(r, 500))
    serials.orders.add(await certSerial(orders.admin))
    serials.frontend.add(await certSerial(frontend.admin))
  } finally {
    clearInterval(poll)
    stop = true
    await Promise.all(loops)
    keepAlive.destroy()
  }
  // Exactly two each: a renewal schedule that ignored the CA's backdated notBefore renewed in a loop.
  expect(renewed).toEqual({ orders: 2, frontend: 2 })
  expect(serials.orders.size).toBe(3)
  expect(serials.frontend.size).toBe(3)
  // New handshakes present the latest certificate.
  expect(await presentedSerial(orders.inbound, cp.cp.caPem)).toBe(await certSerial(orders.admin))
  const failed = outcomes.filter((o) => o !== '200')
  expect(failed).toEqual([])
  expect(outcomes.length).toBeGreaterThan(200)
  expect(app.hits).toBe(outcomes.length)
}, 60_000)
