// Runs the real `remora` CLI in a child process (through tsx, so tests need no build; `built: true`
// runs dist/cli/main.js as production does, for figures such as RSS that tsx's loader would blur).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url))
const BUILT_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export interface Child {
  proc: ChildProcess
  pid: number
  stdout: string
  stderr: string
  exited: Promise<number>
  /** Resolves with the first JSON log line (stdout or stderr) for which `pred` holds. */
  waitForLine(pred: (obj: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  rssBytes(): number
  stop(): Promise<number>
}

export function runRemora(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; built?: boolean } = {}): Child {
  if (opts.built && !existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build first`)
  const proc = spawn(process.execPath, opts.built ? [BUILT_CLI, ...args] : ['--import', 'tsx', CLI, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const child: Child = {
    proc,
    pid: proc.pid ?? 0,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))),
    waitForLine(pred, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          for (const line of (child.stdout + '\n' + child.stderr).split('\n')) {
            if (!line.startsWith('{')) continue
            try {
              const obj = JSON.parse(line) as Record<string, unknown>
              if (pred(obj)) {
                cleanup()
                resolve(obj)
                return true
              }
            } catch {
              /* partial line */
            }
          }
          return false
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`timed out waiting for a log line; stderr:\n${child.stderr.slice(-2000)}`))
        }, timeoutMs)
        const onData = (): void => void check()
        const onExit = (): void => {
          if (!check()) {
            cleanup()
            reject(new Error(`process exited before the log line; stderr:\n${child.stderr.slice(-2000)}`))
          }
        }
        const cleanup = (): void => {
          clearTimeout(timer)
          proc.stdout?.off('data', onData)
          proc.stderr?.off('data', onData)
          proc.off('exit', onExit)
        }
        proc.stdout?.on('data', onData)
        proc.stderr?.on('data', onData)
        proc.once('exit', onExit)
        check()
      })
    },
    rssBytes() {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8')
      const m = /VmRSS:\s+(\d+) kB/.exec(status)
      return m ? Number(m[1]) * 1024 : 0
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      return child.exited
    },
  }
  proc.stdout?.on('data', (c: Buffer) => (child.stdout += c.toString()))
  proc.stderr?.on('data', (c: Buffer) => (child.stderr += c.toString()))
  return child
}
