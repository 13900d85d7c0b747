// Push convergence: time from `apply` (the admin API call `remora apply` makes) to the last ACK,
// with 1,000 simulated sidecars connected, p50/p99 over 20 changes; the same for `remora
// quarantine` (10 identities, one more each round); and the control plane's memory with them connected. Standalone: `npx tsx bench/push-convergence.ts [--sidecars 1000]
// [--changes 20] [--services 100] [--validate shared|each] [--store file|etcd://host:port]`;
// prints one JSON object.
//
// The control plane runs in a child process (its RSS is its own; it timestamps each ACK as it
// arrives). The simulated sidecars run here, each a lightweight client of the real protocol: its
// own key and CSR, a join-token bootstrap, one mTLS stream of signed snapshots, ACKs over mTLS.
// Each snapshot is verified (JWS, pinned key), validated (proxy/xds checkSnapshot: the sidecar's
// code) and compiled, then each sidecar selects its workload's policies and ACKs. With
// `--validate shared` (default) the verify/validate/compile of one distinct snapshot is done once
// for the fleet: 1,000 copies of the same CPU work on two shared cores would time the simulator,
// not the control plane; a real sidecar does it on its own core, and that per-sidecar cost is
// reported as sidecarSwapMs. `--validate each` makes every simulated sidecar do all of it.
// BENCH_CP_PROF=<dir> writes a CPU profile of the control plane over the changes (not the bootstrap) there.
import { fork } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import https from 'node:https'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { callApi, type AdminTarget } from '../cli/admin-client.js'
import { ControlPlane } from '../control-plane/control-plane.js'
import { openStore } from '../control-plane/store/index.js'
import { compile, selectForWorkload, type CompiledPolicySet } from '../proxy/policy/index.js'
import { secureNamingCheck } from '../proxy/tls/index.js'
import { checkSnapshot, createKeyAndCsr, importPinnedKey, verifySnapshot } from '../proxy/xds/index.js'

const NS = 'bench'
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const now = (): number => performance.timeOrigin + performance.now()

type ToChild = { type: 'await'; version: string; n: number } | { type: 'memory' } | { type: 'profile'; action: 'start' | 'stop' } | { type: 'stop' }
type FromChild =
  | { type: 'ready'; address: string; caPem: string; identity: string; adminToken: string }
  | { type: 'converged'; version: string; publishedAt: number; firstAckAt: number; lastAckAt: number; acks: number }
  | { type: 'memory'; rss: number; heapUsed: number; connected: number; cpuUs: number }
  | { type: 'profiled'; file: string | null }

// ---- the control plane (child process) ----------------------------------------------------

let session: import('node:inspector/promises').Session | null = null
/** BENCH_CP_PROF=<dir>: a CPU profile of the control plane over the changes only (not the fleet's bootstrap). */
async function profile(action: 'start' | 'stop'): Promise<string | null> {
  const dir = process.env.BENCH_CP_PROF
  if (!dir) return null
  const { Session } = await import('node:inspector/promises')
  if (action === 'start') {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.start')
    return null
  }
  if (!session) return null
  const { profile: p } = await session.post('Profiler.stop')
  const { writeFile, mkdir } = await import('node:fs/promises')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `control-plane-${Date.now()}.cpuprofile`)
  await writeFile(file, JSON.stringify(p))
  return file
}

async function child(storeUrl: string): Promise<void> {
  const dir = storeUrl === 'file' ? await mkdtemp(join(tmpdir(), 'remora-bench-cp-')) : null
  const store = await openStore(dir ? `file://${dir}` : storeUrl)
  const cp = await ControlPlane.start({ store, listen: { host: '127.0.0.1', port: 0 }, graceMs: 60_000 }, { clock: { now: () => Date.now() }, logger: quiet })
  const acks = new Map<string, { nodes: Set<string>; first: number; last: number }>()
  const published = new Map<string, number>()
  cp.events.on('publish', (version: string) => published.set(version, now()))
  const waiting = new Map<string, number>()
  const check = (version: string): void => {
    const a = acks.get(version)
    const n = waiting.get(version)
    if (!a || n === undefined || a.nodes.size < n) return
    waiting.delete(version)
    process.send!({ type: 'converged', version, publishedAt: published.get(version) ?? NaN, firstAckAt: a.first, lastAckAt: a.last, acks: a.nodes.size } satisfies FromChild)
  }
  cp.events.on('ack', ({ node, version }: { node: string; version: string }) => {
    const t = now()
    let a = acks.get(version)
    if (!a) acks.set(version, (a = { nodes: new Set(), first: t, last: t }))
    if (!a.nodes.has(node)) {
      a.nodes.add(node)
      a.last = t
    }
    check(version)
  })
  process.on('message', (m: ToChild) => {
    if (m.type === 'await') {
      waiting.set(m.version, m.n)
      check(m.version)
    } else if (m.type === 'memory') {
      const cu = process.cpuUsage()
      globalThis.gc?.()
      const mu = process.memoryUsage()
      process.send!({ type: 'memory', rss: mu.rss, heapUsed: mu.heapUsed, connected: cp.connectedSidecars, cpuUs: cu.user + cu.system } satisfies FromChild)
    } else if (m.type === 'profile') {
      void profile(m.action).then((file) => process.send!({ type: 'profiled', file } satisfies FromChild))
    } else if (m.type === 'stop') {
      void (async () => {
        await cp.close()
        await store.close()
        if (dir) await rm(dir, { recursive: true, force: true })
        process.exit(0)
      })()
    }
  })
  process.send!({ type: 'ready', address: cp.address, caPem: cp.caPem, identity: cp.identity, adminToken: cp.adminTokenCreated ?? '' } satisfies FromChild)
}

// ---- the fleet (this process) ---------------------------------------------------------------

/** One allowlist per service: svc-i accepts svc-(i-1) and svc-(i-2); `change` flips one rule's path. */
function policies(services: number, change: number): { source: string; text: string }[] {
  const docs = []
  for (let i = 0; i < services; i++) {
    const callers = [1, 2].map((d) => `cluster.local/ns/${NS}/sa/svc-${(i - d + services) % services}`)
    docs.push({
      apiVersion: 'security.remora.dev/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: `svc-${i}-allow`, namespace: NS },
      spec: {
        selector: { matchLabels: { app: `svc-${i}` } },
        action: 'ALLOW',
        rules: [{ from: [{ source: { principals: callers } }], to: [{ operation: { methods: ['GET', 'POST'], paths: [i === change % services ? `/api/v${change}/*` : '/api/*'] } }] }],
      },
    })
  }
  return [{ source: 'bench.yaml', text: docs.map((d) => stringify(d)).join('---\n') }]
}

interface Fleet {
  readonly address: string
  readonly caPem: string
  readonly identity: string
  readonly shared: boolean
  key: CryptoKey | null
  /** One verify + validate + compile per distinct snapshot, when the fleet shares it. */
  readonly memo: Map<string, Promise<{ version: string; set: CompiledPolicySet }>>
  lastJws: string
}

function post(f: Fleet, o: https.RequestOptions, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const [host, port] = [f.address.slice(0, f.address.lastIndexOf(':')), Number(f.address.slice(f.address.lastIndexOf(':') + 1))]
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port, method: 'POST', ca: f.caPem, minVersion: 'TLSv1.3', checkServerIdentity: secureNamingCheck([f.identity]), headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, ...o }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

async function swap(f: Fleet, jws: string): Promise<{ version: string; set: CompiledPolicySet }> {
  const payload = await verifySnapshot(jws, f.key!)
  const snap = checkSnapshot(payload, { trustDomain: 'cluster.local' })
  return { version: snap.version, set: compile(snap.policies, { rootNamespace: payload.rootNamespace }) }
}

/** One simulated sidecar: bootstrap, one stream, verify → validate → compile → select → ACK. */
class SimSidecar {
  node = ''
  #agent: https.Agent | null = null
  #stream: { destroy(): void } | null = null
  #queue: Promise<void> = Promise.resolve()
  #onApplied: ((version: string) => void) | null = null

  constructor(
    private readonly f: Fleet,
    private readonly sa: string,
    private readonly address: string,
  ) {}

  /** Resolves when the first snapshot was applied and ACKed. */
  async start(token: string): Promise<void> {
    const spiffeId = `spiffe://cluster.local/ns/${NS}/sa/${this.sa}`
    const { keyPem, csrPem } = await createKeyAndCsr(spiffeId)
    const b = await post(this.f, { path: '/v1/bootstrap', agent: false }, { token, csr: csrPem })
    if (b.status !== 200) throw new Error(`bootstrap refused: ${JSON.stringify(b.json.error)}`)
    this.f.key ??= await importPinnedKey(b.json.signingKey as never)
    const tls = { cert: b.json.certPem as string, key: keyPem, ca: this.f.caPem, minVersion: 'TLSv1.3' as const, checkServerIdentity: secureNamingCheck([this.f.identity]) }
    this.#agent = new https.Agent({ keepAlive: true, maxSockets: 1, ...tls })
    const first = new Promise<string>((r) => (this.#onApplied = r))
    const [host, port] = [this.f.address.slice(0, this.f.address.lastIndexOf(':')), Number(this.f.address.slice(this.f.address.lastIndexOf(':') + 1))]
    const body = JSON.stringify({ service: this.sa, labels: { app: this.sa }, address: this.address, version: null })
    const req = https.request({ host, port, path: '/v1/stream', method: 'POST', agent: false, ...tls, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          const fr = JSON.parse(line) as { type: string; node?: string; jws?: string }
          if (fr.type === 'hello') this.node = fr.node!
          else if (fr.type === 'snapshot') this.#queue = this.#queue.then(() => this.#apply(fr.jws!))
        }
      })
    })
    req.on('error', () => {})
    req.end(body)
    this.#stream = req
    await first
  }

  async #apply(jws: string): Promise<void> {
    let applied: { version: string; set: CompiledPolicySet }
    this.f.lastJws = jws
    if (this.f.shared) {
      let m = this.f.memo.get(jws)
      if (!m) {
        this.f.memo.clear() // only the newest snapshot is worth keeping
        this.f.memo.set(jws, (m = swap(this.f, jws)))
      }
      applied = await m
    } else applied = await swap(this.f, jws)
    selectForWorkload(applied.set, { namespace: NS, labels: { app: this.sa } })
    const r = await post(this.f, { path: '/v1/ack', agent: this.#agent! }, { node: this.node, version: applied.version })
    if (r.status !== 200) throw new Error(`ACK refused: ${JSON.stringify(r.json.error)}`)
    this.#onApplied?.(applied.version)
    this.#onApplied = null
  }

  close(): void {
    this.#stream?.destroy()
    this.#agent?.destroy()
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}
const round = (v: number): number => Math.round(v * 10) / 10

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sidecars: { type: 'string', default: '1000' }, changes: { type: 'string', default: '20' }, services: { type: 'string', default: '100' }, validate: { type: 'string', default: 'shared' }, store: { type: 'string', default: 'file' } } })
  // `npm run bench -- --quick` (BENCH_QUICK=1): 100 sidecars, 3 changes: a smoke run, not the figures.
  const quick = process.env.BENCH_QUICK === '1'
  const N = quick ? Math.min(100, Number(values.sidecars)) : Number(values.sidecars)
  const CHANGES = quick ? Math.min(3, Number(values.changes)) : Number(values.changes)
  const SERVICES = Number(values.services)
  const load0 = loadavg()
  const cpProc = fork(fileURLToPath(import.meta.url), ['--control-plane', values.store!], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const inbox: FromChild[] = []
  const waiters: ((m: FromChild) => boolean)[] = []
  cpProc.on('message', (m: FromChild) => {
    const i = waiters.findIndex((w) => w(m))
    if (i >= 0) waiters.splice(i, 1)
    else inbox.push(m)
  })
  const receive = <T extends FromChild['type']>(type: T, pred: (m: Extract<FromChild, { type: T }>) => boolean = () => true, timeoutMs = 120_000): Promise<Extract<FromChild, { type: T }>> =>
    new Promise((resolve, reject) => {
      const hit = (m: FromChild): boolean => m.type === type && pred(m as Extract<FromChild, { type: T }>)
      const queued = inbox.findIndex(hit)
      if (queued >= 0) return resolve(inbox.splice(queued, 1)[0] as Extract<FromChild, { type: T }>)
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${type} from the control plane`)), timeoutMs)
      waiters.push((m) => {
        if (!hit(m)) return false
        clearTimeout(t)
        resolve(m as Extract<FromChild, { type: T }>)
        return true
      })
    })
  const send = (m: ToChild): void => void cpProc.send(m)

  const ready = await receive('ready')
  const admin: AdminTarget = { server: `https://${ready.address}`, token: ready.adminToken, caPem: ready.caPem, identity: ready.identity }
  const memIdle = await (send({ type: 'memory' }), receive('memory'))

  // The policy set first, then the fleet: one join token per service account, reused by its replicas.
  const first = await callApi(admin, 'POST', '/v1/apply', { sources: policies(SERVICES, 0) })
  if (first.status !== 200) throw new Error(`apply refused: ${JSON.stringify(first.json.error)}`)
  const tokens: string[] = []
  for (let s = 0; s < SERVICES; s++) {
    const r = await callApi(admin, 'POST', '/v1/tokens', { namespace: NS, serviceAccount: `svc-${s}`, ttlSeconds: 3600 })
    tokens.push(String(r.json.token))
  }
  const fleet: Fleet = { address: ready.address, caPem: ready.caPem, identity: ready.identity, shared: values.validate !== 'each', key: null, memo: new Map(), lastJws: '' }
  const sidecars: SimSidecar[] = []
  const tConnect = now()
  const BATCH = 50
  for (let i = 0; i < N; i += BATCH) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(N, i + BATCH); j++) {
      const s = j % SERVICES
      // Addresses nobody dials: registrations only feed the clusters in every snapshot.
      const sc = new SimSidecar(fleet, `svc-${s}`, `127.0.0.${2 + Math.floor(j / 50_000)}:${10_000 + (j % 50_000)}`)
      sidecars.push(sc)
      batch.push(sc.start(tokens[s]!))
    }
    await Promise.all(batch)
  }
  const connectMs = now() - tConnect
  // Discovery settles: every sidecar ACKed the snapshot that lists all N endpoints.
  const settle = await callApi(admin, 'GET', '/v1/status')
  const settledVersion = String(settle.json.version)
  send({ type: 'await', version: settledVersion, n: N })
  await receive('converged', (m) => m.version === settledVersion)
  const memConnected = await (send({ type: 'memory' }), receive('memory'))
  send({ type: 'profile', action: 'start' })
  await receive('profiled')
  const fleetCpu0 = process.cpuUsage()

  const samples: number[] = []
  const applyMs: number[] = []
  const spreadMs: number[] = []
  const publishMs: number[] = []
  for (let c = 1; c <= CHANGES; c++) {
    const t0 = now()
    const r = await callApi(admin, 'POST', '/v1/apply', { sources: policies(SERVICES, c) })
    const t1 = now()
    if (r.status !== 200) throw new Error(`apply ${c} refused: ${JSON.stringify(r.json.error)}`)
    const version = String(r.json.version)
    send({ type: 'await', version, n: N })
    const done = await receive('converged', (m) => m.version === version)
    samples.push(done.lastAckAt - t0)
    applyMs.push(t1 - t0)
    spreadMs.push(done.lastAckAt - done.firstAckAt)
    publishMs.push(done.publishedAt - t0)
  }
  const fleetCpu = process.cpuUsage(fleetCpu0)
  // Quarantine (issue 12): from the admin call to the last ACK of the snapshot that carries it; each
  // round quarantines one more workload identity (every snapshot is new; a release would bring back
  // a version the fleet ACKed before). The call itself does not wait: the fleet's ACKs are timed
  // here, as for the changes above.
  const QUARANTINES = quick ? 2 : 10
  const quarantineSamples: number[] = []
  for (let q = 0; q < QUARANTINES; q++) {
    const t0 = now()
    const r = await callApi(admin, 'POST', '/v1/quarantine', { identity: `spiffe://cluster.local/ns/${NS}/sa/svc-${q}`, by: 'bench', reason: `round ${q}`, waitMs: 0 })
    if (r.status !== 200) throw new Error(`quarantine ${q} refused: ${JSON.stringify(r.json.error)}`)
    const version = String(r.json.version)
    send({ type: 'await', version, n: N })
    const done = await receive('converged', (m) => m.version === version)
    quarantineSamples.push(done.lastAckAt - t0)
  }
  const qSorted = [...quarantineSamples].sort((a, b) => a - b)
  const memAfter = await (send({ type: 'memory' }), receive('memory'))
  send({ type: 'profile', action: 'stop' })
  const prof = await receive('profiled')
  if (prof.file) console.error(`control-plane profile (changes only): ${prof.file}`)
  // What one real sidecar pays per snapshot on its own core: verify + validate + compile + select.
  const swaps: number[] = []
  for (let i = 0; i < 21; i++) {
    const t = now()
    selectForWorkload((await swap(fleet, fleet.lastJws)).set, { namespace: NS, labels: { app: 'svc-1' } })
    swaps.push(now() - t)
  }
  swaps.sort((a, b) => a - b)
  const fleetRss = process.memoryUsage().rss
  const sorted = [...samples].sort((a, b) => a - b)
  for (const sc of sidecars) sc.close()
  send({ type: 'stop' })
  await new Promise((r) => cpProc.once('exit', r))
  const mb = (b: number): number => Math.round(b / 1e5) / 10
  console.log(
    JSON.stringify(
      {
        bench: 'push-convergence',
        sidecars: N,
        services: SERVICES,
        policies: SERVICES,
        changes: CHANGES,
        store: values.store,
        applyToLastAckMs: { p50: round(pct(sorted, 50)), p99: round(pct(sorted, 99)), min: round(sorted[0]!), max: round(sorted.at(-1)!), targetP99: 1000, metTarget: pct(sorted, 99) < 1000 },
        quarantineToLastAckMs: { p50: round(pct(qSorted, 50)), p99: round(pct(qSorted, 99)), max: round(qSorted.at(-1)!), samples: QUARANTINES, targetP99: 1000, metTarget: pct(qSorted, 99) < 1000 },
        validate: fleet.shared ? 'shared' : 'each',
        sidecarSwapMs: { p50: round(pct(swaps, 50)), snapshotJwsBytes: fleet.lastJws.length },
        applyCallMs: { p50: round(pct([...applyMs].sort((a, b) => a - b), 50)) },
        applyToPublishMs: { p50: round(pct([...publishMs].sort((a, b) => a - b), 50)) },
        publishToLastAckMs: { p50: round(pct(samples.map((x, i) => x - publishMs[i]!).sort((a, b) => a - b), 50)) },
        cpuMsPerChange: { controlPlane: round((memAfter.cpuUs - memConnected.cpuUs) / 1000 / CHANGES), fleetSimulator: round((fleetCpu.user + fleetCpu.system) / 1000 / CHANGES) },
        firstToLastAckMs: { p50: round(pct([...spreadMs].sort((a, b) => a - b), 50)) },
        samplesMs: samples.map(round),
        connectAllMs: Math.round(connectMs),
        controlPlaneMemoryMB: { idle: { rss: mb(memIdle.rss), heapUsed: mb(memIdle.heapUsed) }, connected: { rss: mb(memConnected.rss), heapUsed: mb(memConnected.heapUsed), streams: memConnected.connected }, afterChanges: { rss: mb(memAfter.rss), heapUsed: mb(memAfter.heapUsed) } },
        fleetProcessRssMB: mb(fleetRss),
        machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavgBefore: load0.map(round), loadavgAfter: loadavg().map(round), node: process.version },
      },
      null,
      2,
    ),
  )
}

if (process.argv[2] === '--control-plane') await child(process.argv[3] ?? 'file')
else await main()
