// Quarantine (issue 12 item 5), end to end through the real CLI: one command cuts frontend off the
// mesh both ways, closes its open connections, refuses its certificate renewals, returns when every
// connected sidecar ACKed with the time it took, and shows in status with who and why; release
// undoes it.
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { plainRequest, until } from '../helpers/mesh.js'
import { runRemora } from '../helpers/process.js'
import { postJson, startFrontendOrders, startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

let cp: TestControlPlane
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let batch: MeshSidecar
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend'

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = runRemora(args, { env: cp.cliEnv })
  const code = await c.exited
  return { code, stdout: c.stdout, stderr: c.stderr }
}

const callOrders = (from: MeshSidecar) => plainRequest(from.outbound, { path: '/orders', headers: { host: 'orders.shop' } })

/** A keep-alive mTLS connection to orders' inbound with frontend's own certificate, one request answered. */
function openAsFrontend(): Promise<tls.TLSSocket> {
  const c = frontend.sidecar.creds.current
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: orders.inbound, cert: c.certPem, key: c.keyPem, ca: c.caPem, servername: 'orders.shop', ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined }, () => {
      s.write('GET /orders HTTP/1.1\r\nhost: orders.shop\r\n\r\n')
    })
    s.once('data', (d: Buffer) => (d.toString().startsWith('HTTP/1.1 200') ? resolve(s) : reject(new Error(d.toString().split('\r\n')[0]))))
    s.on('error', reject)
  })
}

beforeAll(async () => {
  cp = await startTestControlPlane()
  app = await startUpstream()
  ;({ orders, frontend } = await startFrontendOrders(cp, app.address))
  batch = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'batch', app: '127.0.0.1:1', token: await cp.token('batch') })
  await until(() => (batch.sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((c) => c.name.startsWith('orders')), 10_000, 'batch routes to orders')
})

afterAll(async () => {
  for (const s of [batch, frontend, orders]) await s?.close()
  await app?.close()
  await cp?.close()
})

describe('remora quarantine', () => {
  test('cuts frontend off both ways, closes its open connections, refuses its renewal, and says how long it took', async () => {
    expect((await callOrders(frontend)).status).toBe(200)
    const open = await openAsFrontend()
    const closed = new Promise<boolean>((r) => open.once('close', () => r(true)))

    const r = await cli(['quarantine', FRONTEND, '--reason', 'credential leak INC-42', '--by', 'alice'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`quarantined ${FRONTEND}: version \\S+ ACKed by all 3 connected sidecars in \\d+ ms`))

    // its open keep-alive connection to orders was closed by orders' sidecar
    expect(await closed).toBe(true)
    // as caller: its own sidecar refuses, and orders refuses its certificate
    const out = await callOrders(frontend)
    expect(out.status).toBe(403)
    expect(out.headers['x-remora-error-code']).toBe('REMORA_ERR_QUARANTINED')
    await expect(openAsFrontend()).rejects.toThrow(/403/)
    expect(orders.accessLog.at(-1)).toMatchObject({ authz_decision: 'DENY', authz_policy: 'quarantine', response_flags: 'AZ', error_code: 'REMORA_ERR_QUARANTINED' })
    expect(orders.accessLog.at(-1)!.authz_reason).toContain('alice: credential leak INC-42')
    // everyone else is unaffected
    expect((await callOrders(batch)).status).toBe(200)
    // as callee: frontend's own inbound refuses everyone
    const inbound = await plainRequest(frontend.inbound, { path: '/', headers: { host: 'frontend.shop' } }).catch(() => ({ status: 0 }))
    expect([0, 403]).toContain(inbound.status)

    // renewal refused
    const c = frontend.sidecar.creds.current
    const renew = await postJson(cp.address, '/v1/renew', { csr: 'x' }, { caPem: cp.cp.caPem, cert: c.certPem, key: c.keyPem })
    expect(renew.status).toBe(403)
    expect(renew.json.error?.code).toBe('REMORA_ERR_CP_QUARANTINED')

    // status says who and why
    const st = await cli(['status'])
    expect(st.stdout).toContain(`QUARANTINED ${FRONTEND}`)
    expect(st.stdout).toContain('by alice: credential leak INC-42')
    const list = await cli(['quarantine', '--list'])
    expect(list.stdout).toContain(FRONTEND)
  })

  test('refuses the control plane itself and identities outside the trust domain', async () => {
    const self = await cli(['quarantine', 'spiffe://cluster.local/ns/remora-system/sa/remora-control-plane'])
    expect(self.code).not.toBe(0)
    expect(self.stderr + self.stdout).toContain('cannot be quarantined')
    const other = await cli(['quarantine', 'spiffe://evil.example/ns/x/sa/y'])
    expect(other.code).not.toBe(0)
    expect(other.stderr + other.stdout).toContain('trust domain')
  })

  test('release restores it', async () => {
    const r = await cli(['release', FRONTEND, '--by', 'alice'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/released .*ACKed by all 3 connected sidecars/)
    // every sidecar ACKed the release before the command returned: the next call goes through
    expect((await callOrders(frontend)).status).toBe(200)
  })
})
