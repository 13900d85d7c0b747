// A demo-like mesh that records its traffic, for the suggest, preview and web-view tests: a real
// control plane (file store, port 0, optionally --jaeger-ui), real apps behind real sidecars
// (frontend, orders, payments, batch in namespace shop) bootstrapped with join tokens and
// reporting their traffic record when asked; and the real `remora` CLI run in process.
import { mkdtemp, rm } from 'node:fs/promises'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../cli/main.js'
import { ControlPlane } from '../../control-plane/control-plane.js'
import { writeAdminFile } from '../../control-plane/main.js'
import { FileStore, type Store } from '../../control-plane/store/index.js'
import { startMeshSidecar, type MeshSidecar } from './control-plane.js'
import { captureLogger, plainRequest, until } from './mesh.js'
import { startUpstream, type Upstream } from './upstream.js'

export const SERVICES = ['frontend', 'orders', 'payments', 'batch'] as const
export type Service = (typeof SERVICES)[number]

export interface TrafficMesh {
  cp: ControlPlane
  store: Store
  dir: string
  address: string
  adminToken: string
  /** Env for the CLI: the admin file written as the control plane's first start writes it. */
  cliEnv: Record<string, string>
  apps: Record<Service, Upstream>
  sidecars: Record<Service, MeshSidecar>
  /** A plain HTTP call from `from`'s app through its outbound sidecar to `to`. */
  call(from: Service, to: Service, path: string, method?: string): Promise<number>
  /** Every sidecar sends its traffic record now. */
  report(): Promise<void>
  /** The admin API with the admin token (or another one, or none). */
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; json: Record<string, unknown> }>
  /** Applies policies through the API and waits until every sidecar ACKed the new version. */
  apply(yaml: string): Promise<string>
  close(): Promise<void>
}

export async function startTrafficMesh(o: { jaegerUi?: string } = {}): Promise<TrafficMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'remora-traffic-'))
  const store = await FileStore.open(join(dir, 'store'), { pollMs: 100 })
  const cp = await ControlPlane.start(
    { store, listen: { host: '127.0.0.1', port: 0 }, graceMs: 5000, heartbeatMs: 500, ...(o.jaegerUi ? { jaegerUi: o.jaegerUi } : {}) },
    { clock: { now: () => Date.now() }, logger: captureLogger() },
  )
  const adminToken = cp.adminTokenCreated!
  const adminFile = join(dir, 'admin.json')
  await writeAdminFile(adminFile, { server: `https://${cp.address}`, token: adminToken, caPem: cp.caPem, identity: cp.identity })
  const apps = {} as Record<Service, Upstream>
  const sidecars = {} as Record<Service, MeshSidecar>
  for (const s of SERVICES) {
    apps[s] = await startUpstream((req, res) => {
      res.setHeader('content-type', 'text/plain')
      res.end(`${s} ${req.method} ${req.url}`)
    })
    sidecars[s] = await startMeshSidecar({
      addresses: [cp.address],
      caPem: cp.caPem,
      serviceAccount: s,
      app: apps[s].address,
      token: (await cp.createJoinToken('shop', s, 60_000)).token,
      extra: { telemetry: { trafficReport: { interval: '1h' } } },
    })
  }
  const clustersEverywhere = (): boolean => SERVICES.every((s) => SERVICES.every((t) => (sidecars[s].sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((c) => c.name === `${t}.shop`)))
  await until(clustersEverywhere, 20_000, 'every cluster at every sidecar')

  const api: TrafficMesh['api'] = (method, path, body, token = adminToken) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const port = Number(cp.address.slice(cp.address.lastIndexOf(':') + 1))
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          agent: false,
          ca: cp.caPem,
          checkServerIdentity: () => undefined,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }))
        },
      )
      req.on('error', reject)
      req.end(payload)
    })
  }

  return {
    cp,
    store,
    dir,
    address: cp.address,
    adminToken,
    cliEnv: { REMORA_CONFIG: adminFile, REMORA_SERVER: '', REMORA_TOKEN: '', REMORA_CA: '' },
    apps,
    sidecars,
    async call(from, to, path, method = 'GET') {
      return (await plainRequest(sidecars[from].outbound, { method, path, headers: { host: `${to}.shop` } })).status
    },
    async report() {
      for (const s of SERVICES) await sidecars[s].client.reportTraffic()
    },
    api,
    async apply(yaml) {
      const r = await api('POST', '/v1/apply', { sources: [{ source: 'test.yaml', text: yaml }] })
      if (r.status !== 200) throw new Error(`apply: ${JSON.stringify(r.json)}`)
      const version = String(r.json.version)
      await until(() => SERVICES.every((s) => sidecars[s].client.lastGoodVersion === version), 15_000, `version ${version} everywhere`)
      return version
    },
    async close() {
      for (const s of SERVICES) await sidecars[s]?.close()
      await cp.close()
      await store.close()
      for (const s of SERVICES) await apps[s]?.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * The real CLI (cli/main.ts) in this process, with its output captured and the admin file of
 * `env` in the environment. One at a time (the capture replaces console and stdout).
 */
export async function remora(args: string[], env: Record<string, string>): Promise<CliResult> {
  const out: string[] = []
  const err: string[] = []
  const saved = { log: console.log, error: console.error, warn: console.warn, write: process.stdout.write.bind(process.stdout), env: { ...process.env } }
  const fmt = (a: unknown[]): string => `${a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ')}\n`
  console.log = (...a: unknown[]) => void out.push(fmt(a))
  console.error = (...a: unknown[]) => void err.push(fmt(a))
  console.warn = (...a: unknown[]) => void err.push(fmt(a))
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString())
    return true
  }) as typeof process.stdout.write
  Object.assign(process.env, env)
  try {
    const code = await main(args)
    return { code, stdout: out.join(''), stderr: err.join('') }
  } finally {
    console.log = saved.log
    console.error = saved.error
    console.warn = saved.warn
    process.stdout.write = saved.write
    for (const k of Object.keys(env)) {
      if (saved.env[k] === undefined) delete process.env[k]
      else process.env[k] = saved.env[k]
    }
  }
}

