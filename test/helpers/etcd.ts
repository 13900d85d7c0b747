// A real etcd (Debian's etcd-server) on free loopback ports in a temp dir (one member, or a cluster
// of several: startEtcdCluster), for test/system and the reliability faults. A
// missing binary fails the test with the install line: a system test never skips silently.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const ETCD_INSTALL = 'etcd is not installed: apt-get update && apt-get install -y etcd-server (see .ci/packages.txt)'

export interface TestEtcd {
  endpoint: string // host:port
  url: string // etcd://host:port
  stop(): Promise<void>
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

export function etcdBinary(): string {
  const r = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' })
  const bin = r.stdout.trim()
  if (r.status !== 0 || !bin) throw new Error(ETCD_INSTALL)
  return bin
}

/** Resolves once `http://<endpoint>/health` answers 200; throws with etcd's stderr if it exits first. */
async function waitHealthy(endpoint: string, proc: ChildProcess, stderr: () => string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const ok = await fetch(`http://${endpoint}/health`).then((r) => r.ok, () => false)
    if (ok) return
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`etcd exited: ${stderr().slice(-1000)}`)
    if (Date.now() > end) {
      proc.kill('SIGKILL')
      throw new Error(`etcd did not become healthy: ${stderr().slice(-1000)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

function spawnMember(bin: string, o: { name: string; dataDir: string; client: number; peer: number; initialCluster: string; state: 'new' | 'existing' }): { proc: ChildProcess; stderr: () => string; exited: Promise<void> } {
  const proc: ChildProcess = spawn(
    bin,
    [
      '--name', o.name, '--data-dir', o.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${o.client}`, '--advertise-client-urls', `http://127.0.0.1:${o.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${o.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${o.peer}`,
      '--initial-cluster', o.initialCluster, '--initial-cluster-state', o.state,
      '--log-level', 'error', '--logger', 'zap', '--unsafe-no-fsync',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  proc.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)))
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  return { proc, stderr: () => stderr, exited }
}

export async function startEtcd(): Promise<TestEtcd> {
  const bin = etcdBinary()
  const dir = await mkdtemp(join(tmpdir(), 'remora-etcd-'))
  const client = await freePort()
  const peer = await freePort()
  const m = spawnMember(bin, { name: 't', dataDir: join(dir, 'data'), client, peer, initialCluster: `t=http://127.0.0.1:${peer}`, state: 'new' })
  // Ready when the client port accepts a health request.
  await waitHealthy(`127.0.0.1:${client}`, m.proc, m.stderr)
  return {
    endpoint: `127.0.0.1:${client}`,
    url: `etcd://127.0.0.1:${client}`,
    async stop() {
      if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGTERM')
      await m.exited
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export interface TestEtcdMember {
  readonly name: string
  /** host:port of its client URL. */
  readonly endpoint: string
  /** The running process's pid, or null while it is killed. */
  readonly pid: number | null
  readonly running: boolean
  /** SIGKILL (no goodbye to its peers, as a crash or a lost machine). Resolves once it exited. */
  kill(): Promise<void>
  /** Starts it again on its data dir (it rejoins the cluster); resolves once it is healthy. */
  restart(): Promise<void>
}

export interface TestEtcdCluster {
  readonly members: readonly TestEtcdMember[]
  /** Every member's client endpoint (host:port). */
  readonly endpoints: readonly string[]
  /** etcd://a,b,c: what `remora control-plane --store` takes. */
  readonly url: string
  /** The member that is leader now, asked of the running members (etcd v3 maintenance status); null while there is none. */
  leader(): Promise<TestEtcdMember | null>
  /** Until some running member reports a leader (after a leader was killed: the election). */
  waitForLeader(timeoutMs?: number): Promise<TestEtcdMember>
  stop(): Promise<void>
}

/** The v3 maintenance status of one member, through etcd's JSON gateway: its member id and the leader's. */
async function memberStatus(endpoint: string): Promise<{ id: string; leader: string } | null> {
  try {
    const r = await fetch(`http://${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) })
    if (!r.ok) return null
    const j = (await r.json()) as { header?: { member_id?: string }; leader?: string }
    return j.header?.member_id && j.leader && j.leader !== '0' ? { id: j.header.member_id, leader: j.leader } : null
  } catch {
    return null
  }
}

/**
 * `n` etcd members on loopback (distinct client and peer ports, one temp dir each), one cluster.
 * Resolves once every member is healthy (a leader is elected). Fails with ETCD_INSTALL when the
 * binary is missing.
 */
export async function startEtcdCluster(n = 3): Promise<TestEtcdCluster> {
  const bin = etcdBinary()
  const dir = await mkdtemp(join(tmpdir(), 'remora-etcd-cluster-'))
  const spec: { name: string; client: number; peer: number; dataDir: string }[] = []
  for (let i = 0; i < n; i++) spec.push({ name: `m${i}`, client: await freePort(), peer: await freePort(), dataDir: join(dir, `m${i}`) })
  const initialCluster = spec.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',')
  type Live = ReturnType<typeof spawnMember>
  const live: (Live | null)[] = spec.map(() => null)
  const ids = new Map<string, number>() // member id (as the gateway prints it) → index
  const members: TestEtcdMember[] = spec.map((m, i) => ({
    name: m.name,
    endpoint: `127.0.0.1:${m.client}`,
    get pid() {
      return live[i]?.proc.pid ?? null
    },
    get running() {
      return live[i] !== null
    },
    async kill() {
      const l = live[i]
      if (!l) return
      live[i] = null
      if (l.proc.exitCode === null && l.proc.signalCode === null) l.proc.kill('SIGKILL')
      await l.exited
    },
    async restart() {
      if (live[i]) return
      const l = spawnMember(bin, { ...m, initialCluster, state: 'existing' })
      live[i] = l
      await waitHealthy(`127.0.0.1:${m.client}`, l.proc, l.stderr)
    },
  }))
  const stopAll = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.kill()))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    spec.forEach((m, i) => (live[i] = spawnMember(bin, { ...m, initialCluster, state: 'new' })))
    // A member's /health is true only once the cluster has a leader: all must start before any is.
    await Promise.all(spec.map((m, i) => waitHealthy(`127.0.0.1:${m.client}`, live[i]!.proc, live[i]!.stderr, 30_000)))
    for (const [i, m] of members.entries()) {
      const st = await memberStatus(m.endpoint)
      if (!st) throw new Error(`etcd member ${m.name} has no status`)
      ids.set(st.id, i)
    }
  } catch (err) {
    await stopAll()
    throw err
  }
  const leader = async (): Promise<TestEtcdMember | null> => {
    for (const m of members) {
      if (!m.running) continue
      const st = await memberStatus(m.endpoint)
      const i = st ? ids.get(st.leader) : undefined
      if (i !== undefined && members[i]!.running) return members[i]!
    }
    return null
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    url: `etcd://${members.map((m) => m.endpoint).join(',')}`,
    leader,
    async waitForLeader(timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs
      for (;;) {
        const l = await leader()
        if (l) return l
        if (Date.now() > end) throw new Error('etcd cluster: no leader elected')
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    stop: stopAll,
  }
}
