import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cleanupCommands, HOOKS, interceptionRules, type InterceptionOptions, type IpFamily } from './rules.js'
import { RemoraError } from '../errors/index.js'

// Runs iptables / iptables-restore and their IPv6 twins (root with NET_ADMIN in the pod's network
// namespace). Writing is idempotent: whatever a previous run left is removed first, so a restarted
// init container never stacks a second set of jumps. Both families or neither: IPv6 is checked
// before anything is written, and a failed IPv6 write takes the IPv4 rules back out.

/** iptables or ip6tables is missing or refused a rule (the message has its stderr and the fix). */
export class IptablesError extends RemoraError<'REMORA_ERR_INTERCEPTION_IPTABLES'> {
  constructor(message: string) {
    super('REMORA_ERR_INTERCEPTION_IPTABLES', 500, message)
  }
}

/** The commands and the one kernel fact interception depends on (tests give fakes). */
export interface InterceptionHost {
  readonly iptables: string
  readonly iptablesRestore: string
  readonly ip6tables: string
  readonly ip6tablesRestore: string
  /** Whether the kernel has IPv6 in this network namespace. */
  readonly hasIpv6: () => boolean
}

export const DEFAULT_HOST: InterceptionHost = {
  iptables: 'iptables',
  iptablesRestore: 'iptables-restore',
  ip6tables: 'ip6tables',
  ip6tablesRestore: 'ip6tables-restore',
  // The kernel lists IPv6 addresses here whenever it has IPv6 at all (absent with ipv6.disable=1).
  hasIpv6: () => existsSync('/proc/net/if_inet6'),
}

const IPV6_OFF = 'or pass --ipv6=false for an IPv4-only pod'

interface Ran {
  code: number
  stderr: string
}

function run(bin: string, args: string[], family: IpFamily, input?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
    p.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new IptablesError(`${bin} is not installed: install the iptables package (Debian: apt-get install iptables)${family === 6 ? `, ${IPV6_OFF}` : ''}`)
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

const tools = (host: InterceptionHost, f: IpFamily): { list: string; restore: string } =>
  f === 4 ? { list: host.iptables, restore: host.iptablesRestore } : { list: host.ip6tables, restore: host.ip6tablesRestore }

const familiesOf = (ipv6: boolean): IpFamily[] => (ipv6 ? [4, 6] : [4])

/** Fails, writing nothing, when IPv6 rules cannot be written here. */
async function checkIpv6(host: InterceptionHost): Promise<void> {
  if (!host.hasIpv6()) throw new IptablesError(`the kernel has no IPv6 in this network namespace (no /proc/net/if_inet6): ${IPV6_OFF}`)
  // A read: the binary is there and the kernel has IPv6 NAT (ip6table_nat).
  const r = await run(host.ip6tables, ['-t', 'nat', '-S'], 6)
  if (r.code !== 0) throw new IptablesError(`${host.ip6tables} cannot use the nat table (exit ${r.code}: ${r.stderr || 'no message'}): the kernel needs IPv6 NAT (ip6table_nat), ${IPV6_OFF}`)
}

async function removeFamily(host: InterceptionHost, f: IpFamily): Promise<void> {
  const { list } = tools(host, f)
  // A hook may have been added twice by an older, interrupted run: delete until none is left.
  for (const h of HOOKS) {
    for (let i = 0; i < 16; i++) if ((await run(list, ['-t', 'nat', '-D', ...h], f)).code !== 0) break
  }
  for (const args of cleanupCommands().slice(HOOKS.length)) await run(list, args, f)
}

/** Removes every remora rule (IPv4, and IPv6 unless `ipv6` is false); what is absent is skipped. */
export async function removeInterception(opts: { readonly ipv6: boolean } = { ipv6: true }, host: InterceptionHost = DEFAULT_HOST): Promise<void> {
  if (opts.ipv6) await checkIpv6(host)
  for (const f of familiesOf(opts.ipv6)) await removeFamily(host, f)
}

/** Writes the rules of both families (IPv4 only with ipv6: false), replacing any earlier run's. */
export async function applyInterception(o: InterceptionOptions, host: InterceptionHost = DEFAULT_HOST): Promise<void> {
  const families = familiesOf(o.ipv6)
  const inputs = families.map((f) => interceptionRules(o, f))
  if (o.ipv6) await checkIpv6(host)
  for (const f of families) await removeFamily(host, f)
  for (const [i, f] of families.entries()) {
    const { restore } = tools(host, f)
    let r: Ran
    try {
      r = await run(restore, ['--noflush'], f, inputs[i])
    } catch (err) {
      for (const done of families.slice(0, i)) await removeFamily(host, done)
      throw err
    }
    if (r.code !== 0) {
      for (const done of families.slice(0, i)) await removeFamily(host, done)
      throw new IptablesError(`${restore} failed (exit ${r.code}): ${r.stderr || 'no message'}${f === 6 ? `; ${IPV6_OFF}` : ''}`)
    }
  }
}
