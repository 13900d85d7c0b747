// A real control plane (in process: real HTTPS/mTLS on port 0, a file store in a temp dir) and
// sidecars that bootstrap from it with join tokens, for integration tests.
import { mkdtemp, rm } from 'node:fs/promises'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ControlPlane, type ControlPlaneOptions } from '../../control-plane/control-plane.js'
import { writeAdminFile } from '../../control-plane/main.js'
import { FileStore, type Store } from '../../control-plane/store/index.js'
import { validateSidecarConfig, type SidecarConfigInput } from '../../proxy/config/index.js'
import { Sidecar } from '../../proxy/sidecar.js'
import type { AccessLogEntry } from '../../proxy/stages/index.js'
import { ControlPlaneClient } from '../../proxy/xds/index.js'
import { captureLogger, TEST_ENGINE, until } from './mesh.js'

export interface TestControlPlane {
  cp: ControlPlane
  store: Store
  dir: string
  address: string
  adminToken: string
  /** Env for the real CLI: REMORA_CONFIG points at an admin file written like the real first start. */
  cliEnv: NodeJS.ProcessEnv
  logger: ReturnType<typeof captureLogger>
  token(serviceAccount: string, o?: { namespace?: string; ttlMs?: number }): Promise<string>
  close(): Promise<void>
}

export async function startTestControlPlane(o: { certTtlMs?: number; graceMs?: number; dir?: string; port?: number; replicaId?: string; pushDebounceMs?: number; pushDebounceMaxMs?: number; policyFeed?: ControlPlaneOptions['policyFeed']; tokenReviewer?: ControlPlaneOptions['tokenReviewer']; discoveryFeed?: ControlPlaneOptions['discoveryFeed']; outboundTrafficPolicy?: ControlPlaneOptions['outboundTrafficPolicy'] } = {}): Promise<TestControlPlane> {
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), 'remora-cp-')))
  const store = await FileStore.open(join(dir, 'store'), { pollMs: 100 })
  const logger = captureLogger()
  const cp = await ControlPlane.start(
    { store, listen: { host: '127.0.0.1', port: o.port ?? 0 }, certTtlMs: o.certTtlMs, graceMs: o.graceMs ?? 5000, heartbeatMs: 500, replicaId: o.replicaId, pushDebounceMs: o.pushDebounceMs, pushDebounceMaxMs: o.pushDebounceMaxMs, policyFeed: o.policyFeed, tokenReviewer: o.tokenReviewer, discoveryFeed: o.discoveryFeed, ...(o.outboundTrafficPolicy ? { outboundTrafficPolicy: o.outboundTrafficPolicy } : {}) },
    { clock: { now: () => Date.now() }, logger },
  )
  const adminFile = join(dir, 'admin.json')
  const adminToken = cp.adminTokenCreated ?? (JSON.parse(await import('node:fs/promises').then((f) => f.readFile(adminFile, 'utf8'))) as { token: string }).token
  await writeAdminFile(adminFile, { server: `https://${cp.address}`, token: adminToken, caPem: cp.caPem, identity: cp.identity })
  return {
    cp,
    store,
    dir,
    address: cp.address,
    adminToken,
    cliEnv: { REMORA_CONFIG: adminFile, REMORA_SERVER: '', REMORA_TOKEN: '', REMORA_CA: '' },
    logger,
    async token(sa, t = {}) {
      return (await cp.createJoinToken(t.namespace ?? 'shop', sa, t.ttlMs ?? 60_000)).token
    },
    async close() {
      await cp.close()
      await store.close()
    },
  }
}

export interface MeshSidecar {
  sidecar: Sidecar
  client: ControlPlaneClient
  inbound: number
  outbound: number
  admin: number
  spiffeId: string
  accessLog: AccessLogEntry[]
  logger: ReturnType<typeof captureLogger>
  close(): Promise<void>
}

export async function startMeshSidecar(o: {
  addresses: string[]
  caPem: string
  serviceAccount: string
  namespace?: string
  app: string
  token: string | null
  stateDir?: string | null
  labels?: Record<string, string>
  inboundPort?: number
  extra?: Partial<SidecarConfigInput>
}): Promise<MeshSidecar> {
  const ns = o.namespace ?? 'shop'
  const v = validateSidecarConfig({
    apiVersion: 'remora.dev/v1',
    kind: 'SidecarConfig',
    workload: { namespace: ns, serviceAccount: o.serviceAccount, labels: o.labels ?? { app: o.serviceAccount } },
    controlPlane: { addresses: o.addresses, caFile: 'unused-in-tests', stateDir: o.stateDir ?? 'unused' },
    inbound: { port: o.inboundPort ?? 0, bind: '127.0.0.1', app: o.app },
    outbound: { port: 0, bind: '127.0.0.1' },
    admin: { port: 0, bind: '127.0.0.1' },
    ...(TEST_ENGINE !== undefined ? { engine: TEST_ENGINE } : {}),
    ...o.extra,
  })
  if (!v.ok) throw new Error(`test sidecar config invalid: ${JSON.stringify(v.issues)}`)
  const accessLog: AccessLogEntry[] = []
  const logger = captureLogger()
  const clock = { now: () => Date.now() }
  const sidecar = await Sidecar.start({ config: v.config, credentials: null, policies: [] }, { clock, logger, accessLog: (e) => accessLog.push(e), tracing: null })
  const client = new ControlPlaneClient(
    sidecar,
    {
      addresses: o.addresses,
      caPem: o.caPem,
      controlPlaneIdentity: 'spiffe://cluster.local/ns/remora-system/sa/remora-control-plane',
      trustDomain: 'cluster.local',
      token: async () => o.token,
      stateDir: o.stateDir ?? null,
      registration: { service: o.serviceAccount, labels: o.labels ?? { app: o.serviceAccount }, address: `127.0.0.1:${sidecar.ports.inbound}` },
      reconnect: { initialMs: 50, maxMs: 500 },
      idleTimeoutMs: 5000,
    },
    { clock, logger },
  )
  client.start()
  return {
    sidecar,
    client,
    inbound: sidecar.ports.inbound,
    outbound: sidecar.ports.outbound,
    admin: sidecar.ports.admin,
    spiffeId: sidecar.selfId,
    accessLog,
    logger,
    async close() {
      await client.close()
      await sidecar.close()
    },
  }
}

/** frontend → (mTLS) → orders, both bootstrapped from `cp`; resolves once frontend routes to orders. */
export async function startFrontendOrders(cp: TestControlPlane, appAddress: string): Promise<{ orders: MeshSidecar; frontend: MeshSidecar }> {
  const mk = async (sa: string, app: string) => startMeshSidecar({ addresses: [cp.address], caPem: cp.cp.caPem, serviceAccount: sa, app, token: await cp.token(sa) })
  const orders = await mk('orders', appAddress)
  const frontend = await mk('frontend', '127.0.0.1:1')
  await until(() => (frontend.sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((c) => c.name === 'orders.shop'), 10_000, 'orders cluster at frontend')
  return { orders, frontend }
}

/** POST JSON over server-authenticated TLS (bootstrap), optionally with a client certificate. */
export function postJson(address: string, path: string, body: unknown, o: { caPem: string; cert?: string; key?: string }): Promise<{ status: number; json: { error?: { code: string; message: string }; [k: string]: unknown } }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))]
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port, path, method: 'POST', agent: false, ca: o.caPem, cert: o.cert, key: o.key, checkServerIdentity: () => undefined, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

export async function rmDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}
