import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { plainRequest, until } from '../helpers/mesh.js'
import { runRemora, type Child } from '../helpers/process.js'
import { rmDir, startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { freePort, startUpstream, type Upstream } from '../helpers/upstream.js'

// frontend is a real `remora proxy` child process with a state dir (so it can be restarted while
// the control plane is down); orders and batch are in-process sidecars. orders' allowlist (from
// `remora apply`) admits frontend only, so a 403 for batch shows the policy still in force.
let cp: TestControlPlane | null = null
let cpPort = 0
let cpDir = ''
let app: Upstream
let orders: MeshSidecar
let batch: MeshSidecar
let frontend: Child | null = null
let work: string
let fe: { config: string; inbound: number; outbound: number; admin: number }
let v1 = ''

const allow = (...sas: string[]): string => `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: [${sas.map((s) => `"cluster.local/ns/shop/sa/${s}"`).join(', ')}] } }] }]
`

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = runRemora(args, { env: cp!.cliEnv })
  const code = await c.exited
  return { code, stdout: c.stdout, stderr: c.stderr }
}

async function apply(yaml: string): Promise<string> {
  await writeFile(join(work, 'allow.yaml'), yaml)
  const r = await cli(['apply', '-f', join(work, 'allow.yaml')])
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return /version (\w+)/.exec(r.stdout)![1]!
}

/** Polls the control plane's status until `n` sidecars are connected and ACKed `version` (default: its current one). */
async function ackedByAll(version: string | null, n: number, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const st = await cp!.cp.status()
    const connected = st.sidecars.filter((s) => s.connected)
    const want = version ?? st.version
    if (connected.length === n && connected.every((s) => s.versionAcked === want)) return
    if (Date.now() > end) throw new Error(`not ACKed by all: ${JSON.stringify(connected.map((s) => [s.identity, s.versionAcked]))}\nfrontend stderr:\n${frontend?.stderr.slice(-3000) ?? ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function startFrontend(): Child {
  frontend = runRemora(['proxy', '--config', fe.config])
  return frontend
}

const feToOrders = () => plainRequest(fe.outbound, { path: '/orders', headers: { host: 'orders.shop' } })
const batchToOrders = () => plainRequest(batch.outbound, { path: '/orders', headers: { host: 'orders.shop' } })

beforeAll(async () => {
  cp = await startTestControlPlane()
  cpPort = cp.cp.port
  cpDir = cp.dir
  app = await startUpstream()
  work = await mkdtemp(join(tmpdir(), 'remora-cp-down-'))
  orders = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'orders', app: app.address, token: await cp.token('orders'), stateDir: join(work, 'orders-state') })
  batch = await startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: 'batch', app: '127.0.0.1:1', token: await cp.token('batch') })
  fe = { config: join(work, 'frontend.yaml'), inbound: await freePort(), outbound: await freePort(), admin: await freePort() }
  await writeFile(join(work, 'ca.pem'), cp.cp.caPem)
  await writeFile(join(work, 'frontend.token'), await cp.token('frontend'), { mode: 0o600 })
  await writeFile(
    fe.config,
    `apiVersion: remora.dev/v1
kind: SidecarConfig
workload: { namespace: shop, serviceAccount: frontend, labels: { app: frontend } }
controlPlane:
  addresses: ["${cp.address}"]
  caFile: ca.pem
  tokenFile: frontend.token
  stateDir: frontend-state
  reconnect: { initial: 50ms, max: 500ms }
inbound: { port: ${fe.inbound}, bind: 127.0.0.1, app: "127.0.0.1:1" }
outbound: { port: ${fe.outbound}, bind: 127.0.0.1 }
admin: { port: ${fe.admin}, bind: 127.0.0.1 }
accessLog: { enabled: false }
telemetry: { metrics: { port: 0, bind: 127.0.0.1 } }
`,
  )
  startFrontend()
  // Discovery settles first (each registration changes the clusters, hence the version).
  await ackedByAll(null, 3)
  v1 = await apply(allow('frontend'))
  await ackedByAll(v1, 3)
  expect((await feToOrders()).status).toBe(200)
  expect((await batchToOrders()).status).toBe(403)
}, 90_000)

afterAll(async () => {
  await frontend?.stop()
  await batch?.close()
  await orders?.close()
  await cp?.close()
  await app?.close()
  if (work) await rmDir(work)
  if (cpDir) await rmDir(cpDir)
})

describe('control plane down: sidecars serve on the last snapshot, restart on the persisted one, resync when it returns', () => {
  test('with the control plane stopped, sidecars keep serving on their last snapshot (allow and deny)', async () => {
    const gone = orders.client.next('disconnected')
    await cp!.close()
    cp = null
    await gone
    const allowed = await feToOrders()
    expect(`${allowed.status} ${allowed.headers['x-remora-response-flags'] ?? ''}`.trim()).toBe('200')
    const denied = await batchToOrders()
    expect(denied.status).toBe(403)
    expect(denied.headers['x-remora-denied-by']).toMatch(/no ALLOW policy matched/)
    expect(orders.client.lastGoodVersion).toBe(v1)
    expect((await plainRequest(fe.admin, { path: '/ready' })).status).toBe(200)
  })

  test('a sidecar restarted while the control plane is down comes up on its persisted snapshot and serves', async () => {
    expect(await frontend!.stop()).toBe(0)
    const hits = app.hits
    const child = startFrontend()
    const line = await child.waitForLine((o) => o.event === 'persisted_snapshot_applied', 20_000)
    expect(line.version).toBe(v1)
    await until(() => child.stderr.includes('"event":"control_plane_unreachable"'), 10_000, 'a failed connection attempt')
    expect((await plainRequest(fe.admin, { path: '/ready' })).status).toBe(200)
    const r = await feToOrders()
    expect(r.status).toBe(200)
    expect(app.hits).toBe(hits + 1)
    // No secret material in what it logged.
    expect(child.stdout + child.stderr).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY|BEGIN CERTIFICATE|eyJ[\w-]+\.eyJ/)
  })

  test('when the control plane returns, every sidecar reconnects and ACKs the next change', async () => {
    cp = await startTestControlPlane({ dir: cpDir, port: cpPort })
    const v2 = await apply(allow('frontend', 'batch'))
    expect(v2).not.toBe(v1)
    await ackedByAll(v2, 3)
    const table = await cli(['status'])
    expect(table.stdout).toContain(`control plane version ${v2}: 3/3 connected sidecars ACKed it`)
    expect((await batchToOrders()).status).toBe(200)
    expect((await feToOrders()).status).toBe(200)
  })
})
