import { spawn } from 'node:child_process'
import { cleanupCommands, HOOKS, interceptionRules, type InterceptionOptions } from './rules.js'
import { RemoraError } from '../errors/index.js'

// Runs iptables / iptables-restore (root with NET_ADMIN in the pod's network namespace). Writing
// is idempotent: whatever a previous run left is removed first, so a restarted init container
// never stacks a second set of jumps.

/** iptables refused a rule (the message has its stderr). */
export class IptablesError extends RemoraError<'REMORA_ERR_INTERCEPTION_IPTABLES'> {
  constructor(message: string) {
    super('REMORA_ERR_INTERCEPTION_IPTABLES', 500, message)
  }
}

interface Ran {
  code: number
  stderr: string
}

function run(bin: string, args: string[], input?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
    p.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new IptablesError(`${bin} is not installed: install the iptables package (Debian: apt-get install iptables)`)
          : new IptablesError(`${bin}: ${err.message}`),
      ),
    )
    p.on('close', (code) => resolve({ code: code ?? 1, stderr: stderr.trim() }))
    if (p.stdin) {
      // A binary that exits without reading (a usage error) must not crash us with EPIPE.
      p.stdin.on('error', () => {})
      p.stdin.end(input)
    }
  })
}

export interface IptablesBinaries {
  readonly iptables: string
  readonly iptablesRestore: string
}

export const DEFAULT_BINARIES: IptablesBinaries = { iptables: 'iptables', iptablesRestore: 'iptables-restore' }

export async function removeInterception(bin: IptablesBinaries = DEFAULT_BINARIES): Promise<void> {
  // A hook may have been added twice by an older, interrupted run: delete until none is left.
  for (const h of HOOKS) {
    for (let i = 0; i < 16; i++) if ((await run(bin.iptables, ['-t', 'nat', '-D', ...h])).code !== 0) break
  }
  for (const args of cleanupCommands().slice(HOOKS.length)) await run(bin.iptables, args)
}

export async function applyInterception(o: InterceptionOptions, bin: IptablesBinaries = DEFAULT_BINARIES): Promise<void> {
  const rules = interceptionRules(o)
  await removeInterception(bin)
  const r = await run(bin.iptablesRestore, ['--noflush'], rules)
  if (r.code !== 0) throw new IptablesError(`iptables-restore failed (exit ${r.code}): ${r.stderr || 'no message'}`)
}
