// `remora init-iptables`: the injected init container's command. Writes the NAT rules that send
// the app's inbound (app port → 15006) and outbound (→ 15001) TCP through the sidecar, skipping
// the sidecar's own UID, loopback and excluded ports/CIDRs. --dry-run prints them; --clean-up
// removes them. Exit 0 done, 1 iptables failed, 2 bad flags.
import { parseArgs } from 'node:util'
import { applyInterception, interceptionRules, removeInterception, type InterceptionOptions } from '../../proxy/interception/index.js'
import { hasCode } from '../../proxy/errors/index.js'

const USAGE = `usage: remora init-iptables [--proxy-uid 1337] [--proxy-gid GID] [--inbound-ports 8080]
                            [--exclude-outbound-ports 5432,6379] [--exclude-outbound-cidrs 10.96.0.0/12]
                            [--outbound-port 15001] [--inbound-port 15006] [--dry-run | --clean-up]

Runs as root with NET_ADMIN in the pod's network namespace (the injected remora-init container).
Inbound: only the listed app ports are redirected (remora forwards to the declared app port).
Outbound: all TCP except the sidecar's UID/GID, loopback and the exclusions; routed by Host (HTTP).`

function list(v: string | undefined, parse: (s: string) => number | string): (number | string)[] {
  if (v === undefined || v.trim() === '') return []
  return v.split(',').map((s) => parse(s.trim()))
}

const num = (s: string): number => (/^\d+$/.test(s) ? Number(s) : NaN)

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        'proxy-uid': { type: 'string' },
        'proxy-gid': { type: 'string' },
        'inbound-ports': { type: 'string' },
        'exclude-outbound-ports': { type: 'string' },
        'exclude-outbound-cidrs': { type: 'string' },
        'outbound-port': { type: 'string' },
        'inbound-port': { type: 'string' },
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
  try {
    if (values['clean-up']) {
      if (values['dry-run']) {
        console.error('remora init-iptables: --dry-run and --clean-up are exclusive')
        return 2
      }
      await removeInterception()
      console.log('remora init-iptables: interception rules removed')
      return 0
    }
    const o: InterceptionOptions = {
      proxyUid: num(values['proxy-uid'] ?? '1337'),
      ...(values['proxy-gid'] !== undefined ? { proxyGid: num(values['proxy-gid']) } : {}),
      inboundPorts: list(values['inbound-ports'], num) as number[],
      excludeOutboundPorts: list(values['exclude-outbound-ports'], num) as number[],
      excludeOutboundCidrs: list(values['exclude-outbound-cidrs'], (s) => s) as string[],
      outboundPort: num(values['outbound-port'] ?? '15001'),
      inboundPort: num(values['inbound-port'] ?? '15006'),
    }
    if (values['dry-run']) {
      process.stdout.write(interceptionRules(o))
      return 0
    }
    await applyInterception(o)
    console.log(`remora init-iptables: outbound TCP → ${o.outboundPort}, inbound ${o.inboundPorts.length ? o.inboundPorts.join(',') : '(none)'} → ${o.inboundPort}; UID ${o.proxyUid} excluded`)
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
