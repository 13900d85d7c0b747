import http from 'node:http'
import tls from 'node:tls'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { createRootCa } from '../../control-plane/ca/index.js'
import { until } from '../helpers/mesh.js'
import { startFrontendOrders, startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// Root rotation with no restart and no failed request (docs/operations.md, "Root rotation"):
// frontend → (mTLS) → orders under a steady request loop, both bootstrapped from a control plane
// issuing 6 s certificates. 1) the new root joins the trust bundle, every sidecar ACKs a snapshot
// trusting both; 2) ca/root.json becomes the new root (the old one stays in the bundle): the
// control plane issues from it at once and the sidecars' renewed certificates chain to it;
// 3) the old root leaves the bundle.
let cp: TestControlPlane
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar

beforeAll(async () => {
  cp = await startTestControlPlane({ certTtlMs: 6_000 })
  app = await startUpstream()
  ;({ orders, frontend } = await startFrontendOrders(cp, app.address))
}, 60_000)

afterAll(async () => {
  await frontend?.close()
  await orders?.close()
  await cp?.close()
  await app?.close()
})

/** True when the certificate `port` presents to a new handshake chains to `caPem` alone. */
function chainsTo(port: number, caPem: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' }, () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
  })
}

/** Until the control plane's version changed from `from` and every connected sidecar ACKed it. */
async function converged(from: string | null): Promise<string> {
  let version = ''
  await until(
    () => {
      void cp.cp.status().then((st) => {
        const connected = st.sidecars.filter((s) => s.connected)
        if (st.version !== from && connected.length === 2 && connected.every((s) => s.versionAcked === st.version)) version = st.version!
      })
      return version !== ''
    },
    15_000,
    'a new snapshot ACKed by both sidecars',
  )
  return version
}

test('root rotation: trust both, issue from the new root, drop the old one; no restart, no failed request', async () => {
  const oldRoot = cp.cp.caPem
  const next = await createRootCa({ trustDomain: 'cluster.local' }, { clock: { now: () => Date.now() } })
  const outcomes: string[] = []
  let stop = false
  const loop = async (): Promise<void> => {
    while (!stop) {
      outcomes.push(
        await new Promise<string>((resolve) => {
          // A fresh downstream connection each time; frontend's pool opens new mTLS connections to orders as certificates change.
          const req = http.request({ host: '127.0.0.1', port: frontend.outbound, path: '/orders', headers: { host: 'orders.shop' }, agent: false }, (res) => {
            res.resume()
            res.on('end', () => resolve(`${res.statusCode} ${String(res.headers['x-remora-response-flags'] ?? '')}`.trim()))
          })
          req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`))
          req.end()
        }),
      )
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  const running = loop()
  try {
    // 1. Both roots trusted everywhere.
    const v0 = cp.cp.version
    await cp.store.put('ca/trust-bundle.pem', next.certPem)
    const v1 = await converged(v0)
    expect(cp.cp.trustBundle).toContain(next.certPem.trim())
    expect(cp.cp.trustBundle).toContain(oldRoot.trim())

    // 2. The new root issues; the old one stays trusted.
    await cp.store.put('ca/root.json', JSON.stringify({ certPem: next.certPem, keyPem: next.keyPem }))
    await cp.store.put('ca/trust-bundle.pem', oldRoot)
    await until(() => cp.logger.lines.some((l) => (l.obj as { event?: string }).event === 'ca_root_rotated'), 5000, 'control plane on the new root')
    expect(await chainsTo(Number(cp.address.split(':')[1]), next.certPem)).toBe(true)
    expect(await chainsTo(Number(cp.address.split(':')[1]), oldRoot)).toBe(false)
    await converged(v1)
    // Renewal at 70 % of 6 s: both sidecars' certificates chain to the new root within a lifetime.
    let renewed = false
    await until(
      () => {
        void Promise.all([chainsTo(orders.inbound, next.certPem), chainsTo(frontend.inbound, next.certPem)]).then((r) => (renewed = r.every(Boolean)))
        return renewed
      },
      15_000,
      'both sidecars on certificates from the new root',
    )
    const v2 = cp.cp.version

    // 3. The old root leaves the bundle.
    await cp.store.delete('ca/trust-bundle.pem')
    await converged(v2)
    expect(cp.cp.trustBundle).not.toContain(oldRoot.trim())
    await new Promise((r) => setTimeout(r, 300))
  } finally {
    stop = true
    await running
  }
  const failed = outcomes.filter((o) => o !== '200')
  expect(failed).toEqual([])
  expect(outcomes.length).toBeGreaterThan(100)
  // A certificate from the old root is no longer accepted by the control plane.
  expect(cp.cp.caPem).toBe(next.certPem)
}, 60_000)

test('an unusable ca/root.json is refused and logged; the control plane keeps issuing from the current root', async () => {
  const before = cp.cp.caPem
  await cp.store.put('ca/root.json', JSON.stringify({ certPem: 'not a certificate', keyPem: 'not a key' }))
  await until(() => cp.logger.lines.some((l) => (l.obj as { event?: string }).event === 'ca_root_rejected'), 5000, 'ca_root_rejected logged')
  expect(cp.cp.caPem).toBe(before)
  const line = JSON.stringify(cp.logger.lines.find((l) => (l.obj as { event?: string }).event === 'ca_root_rejected'))
  expect(line).not.toContain('not a key')
  // Bootstrap still works, from the current root.
  const late = await startMeshSidecar({ addresses: [cp.address], caPem: before, serviceAccount: 'late', app: app.address, token: await cp.token('late') })
  try {
    let ok = false
    await until(() => (void chainsTo(late.inbound, before).then((r) => (ok = r)), ok), 10_000, 'the late sidecar bootstrapped with a certificate from the current root')
  } finally {
    await late.close()
  }
}, 30_000)
