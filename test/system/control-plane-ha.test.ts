import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { callApi, type AdminTarget } from '../../cli/admin-client.js'
import type { SidecarStatus } from '../../control-plane/control-plane.js'
import { startEtcd, type TestEtcd } from '../helpers/etcd.js'
import { plainRequest } from '../helpers/mesh.js'
import { runRemora, type Child } from '../helpers/process.js'
import { rmDir, startMeshSidecar, type MeshSidecar } from '../helpers/control-plane.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// Two `remora control-plane` processes (replica-a, replica-b) on one real etcd. orders (the
// policy's target) streams from B; frontend and batch from A, with B as their second address.
// A change applied through A must reach orders via B; after A is killed (SIGKILL) frontend and
// batch fail over to B and ACK the next change, applied through B.
let etcd: TestEtcd
let work: string
let a: Child | null = null
let b: Child | null = null
let addrA = ''
let addrB = ''
let admin: AdminTarget
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let batch: MeshSidecar

const allow = (...sas: string[]): string => `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: [${sas.map((s) => `"cluster.local/ns/shop/sa/${s}"`).join(', ')}] } }] }]
`

async function startReplica(id: string): Promise<{ child: Child; address: string }> {
  const child = runRemora(['control-plane', '--store', etcd.url, '--listen', '127.0.0.1:0', '--replica-id', id, '--grace', '5s', '--admin-file', join(work, `admin-${id}.json`)])
  const end = Date.now() + 30_000
  for (;;) {
    const m = /listening on https:\/\/([\d.]+:\d+)/.exec(child.stdout)
    if (m) return { child, address: m[1]! }
    if (child.proc.exitCode !== null) throw new Error(`control plane ${id} exited: ${child.stderr.slice(-2000)}`)
    if (Date.now() > end) throw new Error(`control plane ${id} did not start: ${child.stderr.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function cli(args: string[], server: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = runRemora(args, { env: { REMORA_CONFIG: join(work, 'admin-replica-a.json'), REMORA_SERVER: `https://${server}`, REMORA_TOKEN: '', REMORA_CA: '' } })
  const code = await c.exited
  return { code, stdout: c.stdout, stderr: c.stderr }
}

async function apply(yaml: string, server: string): Promise<string> {
  await writeFile(join(work, 'allow.yaml'), yaml)
  const r = await cli(['apply', '-f', join(work, 'allow.yaml')], server)
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return /version (\w+)/.exec(r.stdout)![1]!
}

async function status(server: string): Promise<{ version: string; replica: string; sidecars: SidecarStatus[]; replicas: { id: string }[] }> {
  const r = await callApi({ ...admin, server: `https://${server}` }, 'GET', '/v1/status')
  expect(r.status).toBe(200)
  return r.json as never
}

/** Until `n` sidecars are connected and have ACKed `version` (default: the replica's current version). */
async function ackedByAll(server: string, n: number, version: string | null = null, timeoutMs = 20_000): Promise<SidecarStatus[]> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const st = await status(server)
    const connected = st.sidecars.filter((s) => s.connected)
    const want = version ?? st.version
    if (connected.length === n && connected.every((s) => s.versionAcked === want)) return connected
    if (Date.now() > end) throw new Error(`not ACKed by all (${want}): ${JSON.stringify(connected.map((s) => [s.identity, s.replica, s.versionAcked]))}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const replicaOf = (sc: SidecarStatus[], sa: string): string | undefined => sc.find((s) => s.identity.endsWith(`/sa/${sa}`))?.replica
const toOrders = (from: MeshSidecar) => plainRequest(from.outbound, { path: '/orders', headers: { host: 'orders.shop' } })

beforeAll(async () => {
  etcd = await startEtcd() // throws the install line when etcd is missing: never a skip
  work = await mkdtemp(join(tmpdir(), 'remora-ha-'))
  ;({ child: a, address: addrA } = await startReplica('replica-a'))
  // B starts second: A's first start created the CA, the signing key and the admin token in etcd.
  ;({ child: b, address: addrB } = await startReplica('replica-b'))
  expect(b.stdout).not.toContain('admin token')
  const file = JSON.parse(await readFile(join(work, 'admin-replica-a.json'), 'utf8')) as { token: string; caPem: string; identity: string }
  admin = { server: `https://${addrA}`, token: file.token, caPem: file.caPem, identity: file.identity }
  const token = async (sa: string): Promise<string> => {
    const r = await callApi(admin, 'POST', '/v1/tokens', { namespace: 'shop', serviceAccount: sa, ttlSeconds: 600 })
    expect(r.status).toBe(200)
    return String(r.json.token)
  }
  app = await startUpstream()
  orders = await startMeshSidecar({ addresses: [addrB, addrA], caPem: file.caPem, serviceAccount: 'orders', app: app.address, token: await token('orders') })
  frontend = await startMeshSidecar({ addresses: [addrA, addrB], caPem: file.caPem, serviceAccount: 'frontend', app: '127.0.0.1:1', token: await token('frontend') })
  batch = await startMeshSidecar({ addresses: [addrA, addrB], caPem: file.caPem, serviceAccount: 'batch', app: '127.0.0.1:1', token: await token('batch') })
  const sc = await ackedByAll(addrA, 3)
  expect([replicaOf(sc, 'orders'), replicaOf(sc, 'frontend'), replicaOf(sc, 'batch')]).toEqual(['replica-b', 'replica-a', 'replica-a'])
}, 120_000)

afterAll(async () => {
  for (const s of [frontend, batch, orders]) await s?.close()
  await a?.stop()
  await b?.stop()
  await app?.close()
  await etcd?.stop()
  if (work) await rmDir(work)
})

describe('HA: two control-plane replicas on one etcd', () => {
  test('both replicas serve the same CA, status and version', async () => {
    // Each replica rebuilds from the store on its own (discovery is debounced): the two agree
    // within moments of the last registration, not necessarily at the instant A saw every ACK.
    let [sa, sb] = [await status(addrA), await status(addrB)]
    for (const end = Date.now() + 10_000; sa.version !== sb.version && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 100))
      ;[sa, sb] = [await status(addrA), await status(addrB)]
    }
    expect(sa.version).toBe(sb.version)
    expect(sa.replicas.map((r) => r.id).sort()).toEqual(['replica-a', 'replica-b'])
    expect(sb.sidecars.length).toBe(sa.sidecars.length)
  })

  test('a change applied through replica A reaches the sidecar connected to replica B and changes its decision', async () => {
    const v1 = await apply(allow('frontend'), addrA)
    const sc = await ackedByAll(addrB, 3, v1)
    expect(replicaOf(sc, 'orders')).toBe('replica-b')
    expect(orders.client.connectedTo).toBe(addrB)
    expect(orders.client.lastGoodVersion).toBe(v1)
    expect((await toOrders(frontend)).status).toBe(200)
    const denied = await toOrders(batch)
    expect(denied.status).toBe(403)
    expect(denied.headers['x-remora-denied-by']).toMatch(/no ALLOW policy matched/)
  })

  test('kill replica A: its sidecars fail over to B, keep serving, and ACK the next change applied through B', async () => {
    const failedOver = Promise.all([frontend, batch].map((s) => s.client.next<string>('connected', 20_000)))
    a!.proc.kill('SIGKILL')
    await a!.exited
    a = null
    expect(await failedOver).toEqual([addrB, addrB])
    // Still serving on the last snapshot meanwhile.
    expect((await toOrders(frontend)).status).toBe(200)
    const v2 = await apply(allow('frontend', 'batch'), addrB)
    const sc = await ackedByAll(addrB, 3, v2)
    expect(sc.map((s) => s.replica)).toEqual(['replica-b', 'replica-b', 'replica-b'])
    // Each sidecar once: the dead replica's status documents still list two of them as connected.
    expect((await status(addrB)).sidecars.map((s) => s.identity).sort()).toEqual(sc.map((s) => s.identity).sort())
    expect((await toOrders(batch)).status).toBe(200)
    expect((await toOrders(frontend)).status).toBe(200)
    const table = await cli(['status'], addrB)
    expect(table.stdout).toContain(`control plane version ${v2}: 3/3 connected sidecars ACKed it`)
  })
})
