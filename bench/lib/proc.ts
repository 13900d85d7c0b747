// Child processes for the benchmark: spawn, wait until a port answers, read CPU time and RSS from
// /proc, stop. Only the processes the bench started are ever signalled, by their own pid.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { delimiter, join } from 'node:path'

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  stdout: string
  stderr: string
  readonly exited: Promise<number>
  exitCode: number | null
}

export function start(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  const p: Proc = {
    name,
    child,
    pid: child.pid ?? 0,
    stdout: '',
    stderr: '',
    exitCode: null,
    exited: new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        p.exitCode = code ?? (signal ? 128 : 1)
        resolve(p.exitCode)
      }),
    ),
  }
  child.once('error', (err) => {
    p.stderr += `spawn error: ${err.message}\n`
  })
  // Keep only the tail: a chatty child must not grow the harness's memory.
  child.stdout?.on('data', (c: Buffer) => (p.stdout = (p.stdout + c.toString()).slice(-65_536)))
  child.stderr?.on('data', (c: Buffer) => (p.stderr = (p.stderr + c.toString()).slice(-65_536)))
  return p
}

export async function stop(p: Proc, timeoutMs = 10_000): Promise<void> {
  if (p.exitCode !== null || p.child.exitCode !== null || p.child.signalCode !== null) return
  p.child.kill('SIGTERM')
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs)
  await p.exited
  clearTimeout(t)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** A free loopback port (bound and released: fine on a quiet loopback). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

export async function waitForPort(port: number, procs: readonly Proc[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    for (const p of procs) {
      if (p.exitCode !== null) throw new Error(`${p.name} exited with code ${p.exitCode} before listening on :${port}\n${p.stderr.slice(-3000)}${p.stdout.slice(-1500)}`)
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port })
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on :${port} after ${timeoutMs} ms (${procs.map((p) => p.name).join(', ')})\n${procs.map((p) => p.stderr.slice(-2000)).join('\n')}`)
    await sleep(50)
  }
}

/** utime + stime of one process, in seconds. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** Resident set size of one process, in bytes (0 once it is gone). */
/** RssAnon and RssFile of a process (bytes); zeros when it is gone. */
export function rssParts(pid: number): { anon: number; file: number } {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? 0) * 1024
    return { anon: kb('RssAnon'), file: kb('RssFile') }
  } catch {
    return { anon: 0, file: 0 }
  }
}

export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** The pid and every descendant (nginx master + worker). */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      parent.set(Number(d), Number(f[1]))
    } catch {
      /* gone */
    }
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid)
  return out
}

/** Where a binary is, looking in PATH and the sbin directories (nginx lives in /usr/sbin). */
export function findBinary(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const d of dirs) {
    if (!d) continue
    const p = join(d, name)
    if (existsSync(p)) return p
  }
  return null
}

export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 })
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : '') }
}

/**
 * Samples the CPU seconds and RSS of a set of processes while a workload runs: CPU as the
 * difference between start and end, RSS as the peak of the sum seen every 100 ms.
 */
export class ResourceMeter {
  readonly #pids: readonly number[]
  readonly #cpu0: number
  readonly #t0 = performance.now()
  #peakRss = 0
  readonly #timer: NodeJS.Timeout

  constructor(pids: readonly number[]) {
    this.#pids = pids
    this.#cpu0 = this.#cpu()
    this.#sample()
    this.#timer = setInterval(() => this.#sample(), 100)
  }

  #cpu(): number {
    let s = 0
    for (const p of this.#pids) s += cpuSeconds(p)
    return s
  }

  #sample(): void {
    let r = 0
    for (const p of this.#pids) r += rssBytes(p)
    if (r > this.#peakRss) this.#peakRss = r
  }

  stop(): { cpuSeconds: number; wallSeconds: number; peakRssBytes: number } {
    clearInterval(this.#timer)
    this.#sample()
    return { cpuSeconds: this.#cpu() - this.#cpu0, wallSeconds: (performance.now() - this.#t0) / 1000, peakRssBytes: this.#peakRss }
  }
}
