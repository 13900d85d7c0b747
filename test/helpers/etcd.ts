// A real etcd (Debian's etcd-server) on free loopback ports in a temp dir, for test/system. A
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

export async function startEtcd(): Promise<TestEtcd> {
  const bin = etcdBinary()
  const dir = await mkdtemp(join(tmpdir(), 'remora-etcd-'))
  const client = await freePort()
  const peer = await freePort()
  const proc: ChildProcess = spawn(
    bin,
    [
      '--name', 't', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `t=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
      '--log-level', 'error', '--logger', 'zap', '--unsafe-no-fsync',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  // Ready when the client port accepts a health request.
  const end = Date.now() + 15_000
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${client}/health`).then((r) => r.ok, () => false)
    if (ok) break
    if (proc.exitCode !== null) throw new Error(`etcd exited: ${stderr.slice(-1000)}`)
    if (Date.now() > end) {
      proc.kill('SIGKILL')
      throw new Error(`etcd did not become healthy: ${stderr.slice(-1000)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    endpoint: `127.0.0.1:${client}`,
    url: `etcd://127.0.0.1:${client}`,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM')
      await exited
      await rm(dir, { recursive: true, force: true })
    },
  }
}
