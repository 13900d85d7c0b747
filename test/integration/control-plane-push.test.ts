import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { plainRequest, until } from '../helpers/mesh.js'
import { runRemora } from '../helpers/process.js'
import { startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../helpers/control-plane.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

// frontend and batch call orders through their sidecars; orders' allowlist comes from `remora apply`.
let cp: TestControlPlane
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let batch: MeshSidecar
let dir: string

const allow = (sa: string): string => `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/${sa}"] } }] }]
`

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = runRemora(args, { env: cp.cliEnv })
  const code = await c.exited
  return { code, stdout: c.stdout, stderr: c.stderr }
}

const callOrders = (from: MeshSidecar) => plainRequest(from.outbound, { path: '/orders', headers: { host: 'orders.shop' } })

beforeAll(async () => {
  cp = await startTestControlPlane()
  app = await startUpstream()
  dir = await mkdtemp(join(tmpdir(), 'remora-push-'))
  const mk = async (sa: string, appAddr: string) => startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: sa, app: appAddr, token: await cp.token(sa) })
  orders = await mk('orders', app.address)
  frontend = await mk('frontend', '127.0.0.1:1')
  batch = await mk('batch', '127.0.0.1:1')
  // Everyone has the cluster for orders once its registration reached a snapshot.
  await until(() => [frontend, batch].every((s) => (s.sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((c) => c.name === 'orders.shop')), 10_000, 'orders cluster everywhere')
}, 60_000)

afterAll(async () => {
  for (const s of [orders, frontend, batch]) await s?.close()
  await cp?.close()
  await app?.close()
})

describe('push: remora apply changes every sidecar, status shows the ACKs', () => {
  test('apply an allowlist for frontend: frontend is allowed, batch denied; status shows the version ACKed by all', async () => {
    await writeFile(join(dir, 'allow.yaml'), allow('frontend'))
    const r = await cli(['apply', '-f', join(dir, 'allow.yaml')])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('authorizationpolicy shop/orders-allow created')
    const version = /version (\w+)/.exec(r.stdout)![1]!
    await until(() => [orders, frontend, batch].every((s) => s.client.lastGoodVersion === version), 10_000, 'version everywhere')
    const allowed = await callOrders(frontend)
    expect(`${allowed.status} ${allowed.headers['x-remora-error-code']} ${allowed.body}`).toMatch(/^200/)
    const denied = await callOrders(batch)
    expect(denied.status).toBe(403)
    expect(denied.headers['x-remora-denied-by']).toMatch(/no ALLOW policy matched/)
    const st = await cli(['status', '-o', 'json'])
    const status = JSON.parse(st.stdout) as { version: string; sidecars: { identity: string; versionAcked: string; connected: boolean }[] }
    expect(status.version).toBe(version)
    const connected = status.sidecars.filter((s) => s.connected)
    expect(connected.map((s) => s.identity).sort()).toEqual(['spiffe://cluster.local/ns/shop/sa/batch', 'spiffe://cluster.local/ns/shop/sa/frontend', 'spiffe://cluster.local/ns/shop/sa/orders'])
    expect(connected.every((s) => s.versionAcked === version)).toBe(true)
    const table = await cli(['status'])
    expect(table.stdout).toContain(`control plane version ${version}: 3/3 connected sidecars ACKed it`)
  })

  test('apply the switched allowlist: the decision flips at the sidecar, live', async () => {
    await writeFile(join(dir, 'allow.yaml'), allow('batch'))
    const r = await cli(['apply', '-f', join(dir, 'allow.yaml')])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('configured')
    const version = /version (\w+)/.exec(r.stdout)![1]!
    await until(() => orders.client.lastGoodVersion === version, 10_000, 'new version at orders')
    expect((await callOrders(batch)).status).toBe(200)
    expect((await callOrders(frontend)).status).toBe(403)
  })

  test('apply of an invalid policy is refused with the validate errors, exit 2, and the store is unchanged', async () => {
    const before = cp.cp.version
    await writeFile(join(dir, 'bad.yaml'), allow('frontend').replace('action: ALLOW', 'action: CUSTOM'))
    const r = await cli(['apply', '-f', join(dir, 'bad.yaml')])
    expect(r.code).toBe(2)
    expect(r.stdout).toMatch(/spec\.action.*REMORA_ERR_POLICY_/)
    expect(r.stderr).toContain('nothing was applied')
    expect(cp.cp.version).toBe(before)
    const got = await cli(['get', 'ap', 'orders-allow', '-n', 'shop', '-o', 'yaml'])
    expect(got.stdout).toContain('sa/batch')
  })

  test('a forced invalid snapshot is NACKed by every sidecar with its error in status, and traffic keeps the old policy', async () => {
    const good = orders.client.lastGoodVersion
    const nacked = orders.client.next<{ version: string; errors: string[] }>('nacked')
    const bad = await cp.cp.publishRaw({
      apiVersion: 'remora.dev/v1',
      kind: 'Snapshot',
      trustDomain: 'cluster.local',
      rootNamespace: 'remora-system',
      policies: [{ apiVersion: 'security.remora.dev/v1', kind: 'AuthorizationPolicy', metadata: { name: 'x', namespace: 'shop' }, spec: { action: 'CUSTOM' } }],
      clusters: [],
      jwks: { keys: [] },
      trustBundle: cp.cp.trustBundle,
    })
    const n = await nacked
    expect(n.version).toBe(bad)
    expect(orders.client.lastGoodVersion).toBe(good)
    expect((await callOrders(batch)).status).toBe(200)
    expect((await callOrders(frontend)).status).toBe(403)
    const st = await cli(['status'])
    expect(st.stdout).toMatch(new RegExp(`last NACK of ${bad} at .*REMORA_ERR_XDS_POLICY_INVALID`))
    const json = JSON.parse((await cli(['status', '-o', 'json'])).stdout) as { sidecars: { identity: string; versionAcked: string; lastNack: { version: string; errors: string[] } | null }[] }
    const o = json.sidecars.find((s) => s.identity.endsWith('/sa/orders'))!
    expect(o.versionAcked).toBe(good)
    expect(o.lastNack?.version).toBe(bad)
    expect(o.lastNack?.errors.join('\n')).toMatch(/spec\.action/)
  })

  test('check --server decides against the live policy set', async () => {
    const r = await cli(['check', '--server', `https://${cp.address}`, '--dest-namespace', 'shop', '--dest-labels', 'app=orders', '--source-principal', 'spiffe://cluster.local/ns/shop/sa/frontend', '--method', 'GET', '--path', '/orders'])
    expect(r.code).toBe(3)
    const ok = await cli(['check', '--server', `https://${cp.address}`, '--dest-namespace', 'shop', '--dest-labels', 'app=orders', '--source-principal', 'spiffe://cluster.local/ns/shop/sa/batch', '--method', 'GET', '--path', '/orders'])
    expect(ok.code).toBe(0)
  })
})
