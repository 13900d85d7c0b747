import { isIP } from 'node:net'
import { RemoraError } from '../errors/index.js'

// The NAT rules that put the sidecar in the pod's path, as one iptables-restore input. Pure: the
// rules are data, so `--dry-run` prints exactly what would be written and tests read them.
// remora cannot read a connection's original destination (that needs SO_ORIGINAL_DST, a native
// call Node does not expose): inbound goes to the one app port, outbound is routed by Host.

export interface InterceptionOptions {
  /** The sidecar's UID (and GID): its own connections are never redirected (no loop). */
  readonly proxyUid: number
  readonly proxyGid?: number
  /** App ports whose inbound TCP goes to the inbound listener; empty = no inbound interception. */
  readonly inboundPorts: readonly number[]
  /** Destination ports the app reaches directly. */
  readonly excludeOutboundPorts: readonly number[]
  /** Destination IPv4 CIDRs the app reaches directly. */
  readonly excludeOutboundCidrs: readonly string[]
  readonly outboundPort: number
  readonly inboundPort: number
}

export const CHAINS = { inbound: 'REMORA_INBOUND', inRedirect: 'REMORA_IN_REDIRECT', output: 'REMORA_OUTPUT', redirect: 'REMORA_REDIRECT' } as const

/** The jumps from the built-in chains into ours; removed one by one on clean-up. */
export const HOOKS: readonly (readonly string[])[] = [
  ['PREROUTING', '-p', 'tcp', '-j', CHAINS.inbound],
  ['OUTPUT', '-p', 'tcp', '-j', CHAINS.output],
]

/** An invalid init-iptables option (exit code 2). */
export class InterceptionError extends RemoraError<'REMORA_ERR_INTERCEPTION_OPTIONS'> {
  constructor(message: string) {
    super('REMORA_ERR_INTERCEPTION_OPTIONS', 400, message)
  }
}

const isPort = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535

export function checkOptions(o: InterceptionOptions): void {
  if (!Number.isInteger(o.proxyUid) || o.proxyUid < 0) throw new InterceptionError(`--proxy-uid must be a UID, got ${o.proxyUid}`)
  for (const [name, ports] of [
    ['--inbound-ports', o.inboundPorts],
    ['--exclude-outbound-ports', o.excludeOutboundPorts],
  ] as const) {
    for (const p of ports) if (!isPort(p)) throw new InterceptionError(`${name}: ${p} is not a port 1..65535`)
  }
  for (const p of [o.outboundPort, o.inboundPort]) if (!isPort(p)) throw new InterceptionError(`listener port ${p} is not a port 1..65535`)
  if (o.inboundPorts.includes(o.inboundPort) || o.inboundPorts.includes(o.outboundPort)) {
    throw new InterceptionError(`--inbound-ports cannot contain the sidecar's own ports (${o.inboundPort}, ${o.outboundPort})`)
  }
  for (const c of o.excludeOutboundCidrs) {
    const [addr, bits, extra] = c.split('/')
    if (isIP(addr ?? '') !== 4 || extra !== undefined || (bits !== undefined && !(/^\d{1,2}$/.test(bits) && Number(bits) <= 32))) {
      throw new InterceptionError(`--exclude-outbound-cidrs: "${c}" is not an IPv4 address or CIDR`)
    }
  }
}

/** The iptables-restore input (table nat, applied with --noflush: other tables and chains untouched). */
export function interceptionRules(o: InterceptionOptions): string {
  checkOptions(o)
  const l: string[] = ['*nat']
  for (const c of Object.values(CHAINS)) l.push(`:${c} - [0:0]`)
  // Inbound: only the app ports; the sidecar's inbound listener itself is reached directly by
  // other sidecars (pod IP:15006), so it needs no rule.
  l.push(`-A ${CHAINS.inRedirect} -p tcp -j REDIRECT --to-ports ${o.inboundPort}`)
  for (const p of o.inboundPorts) l.push(`-A ${CHAINS.inbound} -p tcp --dport ${p} -j ${CHAINS.inRedirect}`)
  // Outbound: everything the app sends over TCP, except the sidecar's own traffic (by UID/GID),
  // loopback, and what is excluded.
  l.push(`-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`)
  l.push(`-A ${CHAINS.output} -m owner --uid-owner ${o.proxyUid} -j RETURN`)
  l.push(`-A ${CHAINS.output} -m owner --gid-owner ${o.proxyGid ?? o.proxyUid} -j RETURN`)
  l.push(`-A ${CHAINS.output} -o lo -j RETURN`)
  l.push(`-A ${CHAINS.output} -d 127.0.0.0/8 -j RETURN`)
  for (const p of o.excludeOutboundPorts) l.push(`-A ${CHAINS.output} -p tcp --dport ${p} -j RETURN`)
  for (const c of o.excludeOutboundCidrs) l.push(`-A ${CHAINS.output} -d ${c.includes('/') ? c : `${c}/32`} -j RETURN`)
  l.push(`-A ${CHAINS.output} -j ${CHAINS.redirect}`)
  for (const h of HOOKS) l.push(`-A ${h.join(' ')}`)
  l.push('COMMIT', '')
  return l.join('\n')
}

/** `iptables` argument lists that remove everything interceptionRules() adds (each may fail when absent). */
export function cleanupCommands(): string[][] {
  const cmds: string[][] = HOOKS.map((h) => ['-t', 'nat', '-D', ...h])
  for (const c of Object.values(CHAINS)) cmds.push(['-t', 'nat', '-F', c])
  for (const c of Object.values(CHAINS)) cmds.push(['-t', 'nat', '-X', c])
  return cmds
}
