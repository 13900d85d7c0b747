import { isIP } from 'node:net'
import { RemoraError } from '../errors/index.js'

// The NAT rules that put the sidecar in the pod's path, as one iptables-restore input per IP
// family (iptables for IPv4, ip6tables for IPv6: the same chains, each with its own loopback and
// CIDRs). Pure: the rules are data, so `--dry-run` prints exactly what would be written and tests
// read them. REDIRECT keeps the original destination in conntrack: the sidecar reads it back with
// SO_ORIGINAL_DST (proxy/native), so every inbound port and every outbound address can be taken.

export type IpFamily = 4 | 6

export interface InterceptionOptions {
  /** The sidecar's UID (and GID): its own connections are never redirected (no loop). */
  readonly proxyUid: number
  readonly proxyGid?: number
  /**
   * Inbound TCP ports redirected to the inbound listener: '*' every port (Istio's default) but
   * `excludeInboundPorts` and the sidecar's own; a list: just those; empty: no inbound interception.
   */
  readonly inboundPorts: '*' | readonly number[]
  /** Ports the app serves directly, never redirected (SSH 22 only when listed here); they matter with '*'. */
  readonly excludeInboundPorts: readonly number[]
  /** Destination ports the app reaches directly. */
  readonly excludeOutboundPorts: readonly number[]
  /** Destination IPv4 and IPv6 addresses or CIDRs the app reaches directly; each goes to its family's rules. */
  readonly excludeOutboundCidrs: readonly string[]
  readonly outboundPort: number
  readonly inboundPort: number
  /** Write the IPv6 rules too (ip6tables); false for a pod on a kernel or node without IPv6. */
  readonly ipv6: boolean
}

export const CHAINS = { inbound: 'REMORA_INBOUND', inRedirect: 'REMORA_IN_REDIRECT', output: 'REMORA_OUTPUT', redirect: 'REMORA_REDIRECT' } as const

/** The sidecar's listeners other than inbound and outbound: admin (15000) and Prometheus (15090). */
export const SIDECAR_PORTS: readonly number[] = [15000, 15090]

/** The jumps from the built-in chains into ours; removed one by one on clean-up. */
export const HOOKS: readonly (readonly string[])[] = [
  ['PREROUTING', '-p', 'tcp', '-j', CHAINS.inbound],
  ['OUTPUT', '-p', 'tcp', '-j', CHAINS.output],
]

const LOOPBACK: Readonly<Record<IpFamily, string>> = { 4: '127.0.0.0/8', 6: '::1/128' }
const HOST_BITS: Readonly<Record<IpFamily, number>> = { 4: 32, 6: 128 }

/** An invalid init-iptables option (exit code 2). */
export class InterceptionError extends RemoraError<'REMORA_ERR_INTERCEPTION_OPTIONS'> {
  constructor(message: string) {
    super('REMORA_ERR_INTERCEPTION_OPTIONS', 400, message)
  }
}

const isPort = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535

/** The family of an address or CIDR (`10.96.0.0/12`, `fd00::/8`, `169.254.169.254`), or null when it is neither. */
export function cidrFamily(c: string): IpFamily | null {
  const [addr, bits, extra] = c.split('/')
  const f = isIP(addr ?? '')
  if ((f !== 4 && f !== 6) || extra !== undefined) return null
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= HOST_BITS[f])) return null
  return f
}

/** Every port the sidecar listens on: never redirected inbound, never an explicit inbound port. */
export function ownPorts(o: Pick<InterceptionOptions, 'inboundPort' | 'outboundPort'>): number[] {
  return [...new Set([o.inboundPort, o.outboundPort, ...SIDECAR_PORTS])].sort((a, b) => a - b)
}

export function checkOptions(o: InterceptionOptions): void {
  if (!Number.isInteger(o.proxyUid) || o.proxyUid < 0) throw new InterceptionError(`--proxy-uid must be a UID, got ${o.proxyUid}`)
  if (o.proxyGid !== undefined && (!Number.isInteger(o.proxyGid) || o.proxyGid < 0)) throw new InterceptionError(`--proxy-gid must be a GID, got ${o.proxyGid}`)
  for (const [name, ports] of [
    ['--inbound-ports', o.inboundPorts === '*' ? [] : o.inboundPorts],
    ['--exclude-inbound-ports', o.excludeInboundPorts],
    ['--exclude-outbound-ports', o.excludeOutboundPorts],
  ] as const) {
    for (const p of ports) if (!isPort(p)) throw new InterceptionError(`${name}: ${p} is not a port 1..65535`)
  }
  for (const p of [o.outboundPort, o.inboundPort]) if (!isPort(p)) throw new InterceptionError(`listener port ${p} is not a port 1..65535`)
  const own = ownPorts(o)
  if (o.inboundPorts !== '*' && o.inboundPorts.some((p) => own.includes(p))) {
    throw new InterceptionError(`--inbound-ports cannot contain the sidecar's own ports (${own.join(', ')})`)
  }
  const both = o.inboundPorts === '*' ? [] : o.inboundPorts.filter((p) => o.excludeInboundPorts.includes(p))
  if (both.length) throw new InterceptionError(`port ${both.join(', ')} is both in --inbound-ports and in --exclude-inbound-ports`)
  for (const c of o.excludeOutboundCidrs) {
    const f = cidrFamily(c)
    if (f === null) throw new InterceptionError(`--exclude-outbound-cidrs: "${c}" is not an IPv4 or IPv6 address or CIDR`)
    if (f === 6 && !o.ipv6) throw new InterceptionError(`--exclude-outbound-cidrs: "${c}" is IPv6, but --ipv6=false writes no IPv6 rules`)
  }
}

/**
 * The iptables-restore (family 4) or ip6tables-restore (family 6) input: table nat, applied with
 * --noflush, so other tables and chains are untouched.
 */
export function interceptionRules(o: InterceptionOptions, family: IpFamily = 4): string {
  checkOptions(o)
  const l: string[] = ['*nat']
  for (const c of Object.values(CHAINS)) l.push(`:${c} - [0:0]`)
  // Inbound. The sidecar's own ports are reached directly (other sidecars dial pod IP:15006,
  // Prometheus scrapes :15090), so they return first; everything else is the app's and is
  // redirected, and the sidecar forwards it to the port it was for (its original destination).
  l.push(`-A ${CHAINS.inRedirect} -p tcp -j REDIRECT --to-ports ${o.inboundPort}`)
  if (o.inboundPorts === '*') {
    for (const p of new Set([...ownPorts(o), ...o.excludeInboundPorts])) l.push(`-A ${CHAINS.inbound} -p tcp --dport ${p} -j RETURN`)
    l.push(`-A ${CHAINS.inbound} -p tcp -j ${CHAINS.inRedirect}`)
  } else {
    for (const p of o.inboundPorts) l.push(`-A ${CHAINS.inbound} -p tcp --dport ${p} -j ${CHAINS.inRedirect}`)
  }
  // Outbound: everything the app sends over TCP, except the sidecar's own traffic (by UID/GID),
  // loopback, and what is excluded.
  l.push(`-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`)
  l.push(`-A ${CHAINS.output} -m owner --uid-owner ${o.proxyUid} -j RETURN`)
  l.push(`-A ${CHAINS.output} -m owner --gid-owner ${o.proxyGid ?? o.proxyUid} -j RETURN`)
  l.push(`-A ${CHAINS.output} -o lo -j RETURN`)
  l.push(`-A ${CHAINS.output} -d ${LOOPBACK[family]} -j RETURN`)
  for (const p of o.excludeOutboundPorts) l.push(`-A ${CHAINS.output} -p tcp --dport ${p} -j RETURN`)
  for (const c of o.excludeOutboundCidrs) {
    if (cidrFamily(c) !== family) continue
    l.push(`-A ${CHAINS.output} -d ${c.includes('/') ? c : `${c}/${HOST_BITS[family]}`} -j RETURN`)
  }
  l.push(`-A ${CHAINS.output} -j ${CHAINS.redirect}`)
  for (const h of HOOKS) l.push(`-A ${h.join(' ')}`)
  l.push('COMMIT', '')
  return l.join('\n')
}

/** Both families' inputs, as `--dry-run` prints them: each after a comment naming its command. */
export function dryRunRules(o: InterceptionOptions): string {
  let out = `# iptables-restore --noflush\n${interceptionRules(o, 4)}`
  if (o.ipv6) out += `# ip6tables-restore --noflush\n${interceptionRules(o, 6)}`
  return out
}

/** `iptables` / `ip6tables` argument lists that remove everything interceptionRules() adds (each may fail when absent). */
export function cleanupCommands(): string[][] {
  const cmds: string[][] = HOOKS.map((h) => ['-t', 'nat', '-D', ...h])
  for (const c of Object.values(CHAINS)) cmds.push(['-t', 'nat', '-F', c])
  for (const c of Object.values(CHAINS)) cmds.push(['-t', 'nat', '-X', c])
  return cmds
}
