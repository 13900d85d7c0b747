// `remora init-iptables`: the injected init container's command. Writes the NAT rules, for IPv4
// and IPv6, that send the app's inbound TCP (every port but the sidecar's own and the excluded →
// 15006) and outbound TCP (→ 15001) through the sidecar, skipping the sidecar's own UID, loopback
// and excluded ports/CIDRs. --dry-run prints them; --clean-up removes them.
// Exit 0 done, 1 iptables failed (or no IPv6 without --ipv6=false), 2 bad flags.
import { parseArgs } from 'node:util'
import { applyInterception, dryRunRules, ownPorts, removeInterception, type InterceptionOptions } from '../../proxy/interception/index.js'
import { hasCode } from '../../proxy/errors/index.js'

const USAGE = `usage: remora init-iptables [--proxy-uid 1337] [--proxy-gid GID]
                            [--inbound-ports '*' | 8080,9090 | ''] [--exclude-inbound-ports 22]
                            [--exclude-outbound-ports 5432,6379] [--exclude-outbound-cidrs 10.96.0.0/12,fd00::/8]
                            [--outbound-port 15001] [--inbound-port 15006] [--ipv6=false]
                            [--dry-run | --clean-up]

Runs as root with NET_ADMIN in the pod's network namespace (the injected remora-init container).
Inbound: every TCP port ('*', the default) but --exclude-inbound-ports and the sidecar's own
(15000, 15001, 15006, 15090); or only the listed ports; '' for none. The sidecar forwards each
connection to the port it was for (its original destination).
Outbound: all TCP except the sidecar's UID/GID, loopback and the exclusions.
Both iptables (IPv4) and ip6tables (IPv6) rules are written; a kernel without IPv6 or a missing
ip6tables fails unless --ipv6=false (IPv4 only). CIDRs go to their own family's rules.`

function list(v: string | undefined, parse: (s: string) => number | string): (number | string)[] {
  if (v === undefined || v.trim() === '') return []
  return v.split(',').map((s) => parse(s.trim()))
}

const num = (s: string): number => (/^\d+$/.test(s) ? Number(s) : NaN)

/** `--ipv6` value: true unless `false`; anything else is a usage error. */
function ipv6Flag(v: string | undefined): boolean | null {
  if (v === undefined || v === 'true') return true
  if (v === 'false') return false
  return null
}

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        'proxy-uid': { type: 'string' },
        'proxy-gid': { type: 'string' },
        'inbound-ports': { type: 'string' },
        'exclude-inbound-ports': { type: 'string' },
        'exclude-outbound-ports': { type: 'string' },
        'exclude-outbound-cidrs': { type: 'string' },
        'outbound-port': { type: 'string' },
        'inbound-port': { type: 'string' },
        ipv6: { type: 'string' },
        'dry-run': { type: 'boolean' },
        'clean-up': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora init-iptables: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const ipv6 = ipv6Flag(values.ipv6)
  if (ipv6 === null) {
    console.error(`remora init-iptables: --ipv6 must be true or false, got "${values.ipv6}"`)
    return 2
  }
  try {
    if (values['clean-up']) {
      if (values['dry-run']) {
        console.error('remora init-iptables: --dry-run and --clean-up are exclusive')
        return 2
      }
      await removeInterception({ ipv6 })
      console.log(`remora init-iptables: interception rules removed (${ipv6 ? 'IPv4 and IPv6' : 'IPv4'})`)
      return 0
    }
    const inbound = values['inbound-ports']?.trim()
    const o: InterceptionOptions = {
      proxyUid: num(values['proxy-uid'] ?? '1337'),
      ...(values['proxy-gid'] !== undefined ? { proxyGid: num(values['proxy-gid']) } : {}),
      inboundPorts: inbound === undefined || inbound === '*' ? '*' : (list(inbound, num) as number[]),
      excludeInboundPorts: list(values['exclude-inbound-ports'], num) as number[],
      excludeOutboundPorts: list(values['exclude-outbound-ports'], num) as number[],
      excludeOutboundCidrs: list(values['exclude-outbound-cidrs'], (s) => s) as string[],
      outboundPort: num(values['outbound-port'] ?? '15001'),
      inboundPort: num(values['inbound-port'] ?? '15006'),
      ipv6,
    }
    if (values['dry-run']) {
      process.stdout.write(dryRunRules(o))
      return 0
    }
    await applyInterception(o)
    const inboundText =
      o.inboundPorts === '*'
        ? `every port but ${[...new Set([...ownPorts(o), ...o.excludeInboundPorts])].join(',')}`
        : o.inboundPorts.length
          ? o.inboundPorts.join(',')
          : '(none)'
    console.log(`remora init-iptables: outbound TCP → ${o.outboundPort}, inbound ${inboundText} → ${o.inboundPort} (${ipv6 ? 'IPv4 and IPv6' : 'IPv4 only'}); UID ${o.proxyUid} excluded`)
    return 0
  } catch (err) {
    if (hasCode(err, 'REMORA_ERR_INTERCEPTION_OPTIONS')) {
      console.error(`remora init-iptables: ${err.message}`)
      return 2
    }
    if (hasCode(err, 'REMORA_ERR_INTERCEPTION_IPTABLES')) {
      console.error(`remora init-iptables: ${err.message}`)
      return 1
    }
    throw err
  }
}
