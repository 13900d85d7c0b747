import { describe, expect, test } from 'vitest'
import { cleanupCommands, dryRunRules, interceptionRules, type InterceptionOptions } from '../../../proxy/interception/index.js'
import { runRemora } from '../../helpers/process.js'

const base: InterceptionOptions = {
  proxyUid: 1337,
  inboundPorts: [8080],
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  excludeOutboundCidrs: [],
  outboundPort: 15001,
  inboundPort: 15006,
  ipv6: true,
}
const lines = (o: Partial<InterceptionOptions>, family: 4 | 6 = 4): string[] => interceptionRules({ ...base, ...o }, family).trim().split('\n')
const chain = (l: readonly string[], name: string): string[] => l.filter((x) => x.startsWith(`-A ${name} `))

describe('interceptionRules', () => {
  test('one nat table transaction: our chains, inbound app port → 15006, outbound → 15001, hooks last', () => {
    const l = lines({})
    expect(l[0]).toBe('*nat')
    expect(l.at(-1)).toBe('COMMIT')
    expect(l).toContain('-A REMORA_INBOUND -p tcp --dport 8080 -j REMORA_IN_REDIRECT')
    expect(l).toContain('-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006')
    expect(l).toContain('-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001')
    expect(l.slice(-3, -1)).toEqual(['-A PREROUTING -p tcp -j REMORA_INBOUND', '-A OUTPUT -p tcp -j REMORA_OUTPUT'])
  })

  test("inbound '*': the sidecar's own ports (inbound, outbound, admin, metrics) and the excluded return, then every other port is redirected", () => {
    expect(chain(lines({ inboundPorts: '*', excludeInboundPorts: [22, 15000] }), 'REMORA_INBOUND')).toEqual([
      '-A REMORA_INBOUND -p tcp --dport 15000 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15001 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15006 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15090 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 22 -j RETURN',
      '-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT',
    ])
  })

  test("inbound '*' takes SSH (22) too unless it is listed, and moved listener ports are the ones that return", () => {
    const l = chain(lines({ inboundPorts: '*', inboundPort: 16006, outboundPort: 16001 }), 'REMORA_INBOUND')
    expect(l.filter((x) => x.includes('--dport 22 '))).toEqual([])
    expect(l.map((x) => /--dport (\d+)/.exec(x)?.[1]).filter(Boolean)).toEqual(['15000', '15090', '16001', '16006'])
  })

  test("the sidecar's UID/GID and loopback return before the redirect (no loop), and the redirect is the chain's last rule", () => {
    expect(chain(lines({ proxyGid: 1338 }), 'REMORA_OUTPUT')).toEqual([
      '-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A REMORA_OUTPUT -m owner --gid-owner 1338 -j RETURN',
      '-A REMORA_OUTPUT -o lo -j RETURN',
      '-A REMORA_OUTPUT -d 127.0.0.0/8 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ])
  })

  test('IPv6: the same chains, hooks and redirects, with ::1/128 as loopback', () => {
    const v4 = lines({ inboundPorts: '*' }, 4)
    const v6 = lines({ inboundPorts: '*' }, 6)
    expect(v6).toContain('-A REMORA_OUTPUT -d ::1/128 -j RETURN')
    expect(v6).not.toContain('-A REMORA_OUTPUT -d 127.0.0.0/8 -j RETURN')
    expect(v6.map((x) => x.replace('::1/128', '127.0.0.0/8'))).toEqual(v4)
  })

  test('excluded outbound ports go to both families; each CIDR only to its own, a bare address becoming /32 or /128', () => {
    const o = { excludeOutboundPorts: [5432, 6379], excludeOutboundCidrs: ['10.96.0.0/12', 'fd00:10:96::/112', '169.254.169.254', 'fd00::5'] }
    expect(chain(lines(o, 4), 'REMORA_OUTPUT').slice(4)).toEqual([
      '-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A REMORA_OUTPUT -p tcp --dport 6379 -j RETURN',
      '-A REMORA_OUTPUT -d 10.96.0.0/12 -j RETURN',
      '-A REMORA_OUTPUT -d 169.254.169.254/32 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ])
    expect(chain(lines(o, 6), 'REMORA_OUTPUT').slice(4)).toEqual([
      '-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A REMORA_OUTPUT -p tcp --dport 6379 -j RETURN',
      '-A REMORA_OUTPUT -d fd00:10:96::/112 -j RETURN',
      '-A REMORA_OUTPUT -d fd00::5/128 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ])
  })

  test('no inbound ports: no inbound redirect rule (outbound-only pods such as Jobs)', () => {
    expect(chain(lines({ inboundPorts: [] }), 'REMORA_INBOUND')).toEqual([])
    expect(chain(lines({ inboundPorts: [] }, 6), 'REMORA_INBOUND')).toEqual([])
  })

  test('bad options are refused before anything is written', () => {
    const bad = (o: Partial<InterceptionOptions>): (() => string) => () => interceptionRules({ ...base, ...o })
    expect(bad({ inboundPorts: [70000] })).toThrow(/--inbound-ports/)
    expect(bad({ excludeInboundPorts: [0] })).toThrow(/--exclude-inbound-ports/)
    for (const own of [15006, 15001, 15000, 15090]) expect(bad({ inboundPorts: [own] })).toThrow(/own ports/)
    expect(bad({ inboundPorts: [8080], excludeInboundPorts: [8080] })).toThrow(/both in --inbound-ports and in --exclude-inbound-ports/)
    for (const c of ['fd00::/129', '10.0.0.0/33', 'example.com', '10.0.0.0/8/1']) expect(bad({ excludeOutboundCidrs: [c] })).toThrow(/not an IPv4 or IPv6 address or CIDR/)
    expect(bad({ excludeOutboundCidrs: ['fd00::/8'], ipv6: false })).toThrow(/IPv6, but --ipv6=false/)
    expect(bad({ proxyUid: -1 })).toThrow(/--proxy-uid/)
    // Their valid twins.
    expect(bad({ excludeOutboundCidrs: ['fd00::/8'] })).not.toThrow()
    expect(bad({ inboundPorts: '*', excludeInboundPorts: [8080] })).not.toThrow()
  })

  test('clean-up removes the hooks first, then flushes and deletes every chain', () => {
    expect(cleanupCommands()).toEqual([
      ['-t', 'nat', '-D', 'PREROUTING', '-p', 'tcp', '-j', 'REMORA_INBOUND'],
      ['-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', 'REMORA_OUTPUT'],
      ...['REMORA_INBOUND', 'REMORA_IN_REDIRECT', 'REMORA_OUTPUT', 'REMORA_REDIRECT'].map((c) => ['-t', 'nat', '-F', c]),
      ...['REMORA_INBOUND', 'REMORA_IN_REDIRECT', 'REMORA_OUTPUT', 'REMORA_REDIRECT'].map((c) => ['-t', 'nat', '-X', c]),
    ])
  })

  test('the dry run prints each family after a comment naming its command; IPv4 alone with ipv6 off', () => {
    const o = { ...base, inboundPorts: '*' as const }
    expect(dryRunRules(o)).toBe(`# iptables-restore --noflush\n${interceptionRules(o, 4)}# ip6tables-restore --noflush\n${interceptionRules(o, 6)}`)
    expect(dryRunRules({ ...o, ipv6: false })).toBe(`# iptables-restore --noflush\n${interceptionRules(o, 4)}`)
  })
})

describe('remora init-iptables (the CLI)', () => {
  test("--dry-run prints the rules and touches nothing: by default every inbound port ('*') and both families", async () => {
    const r = runRemora(['init-iptables', '--dry-run', '--exclude-inbound-ports', '22', '--exclude-outbound-ports', '5432', '--exclude-outbound-cidrs', '10.96.0.0/12,fd00::/8'])
    expect(await r.exited).toBe(0)
    expect(r.stdout).toBe(dryRunRules({ ...base, inboundPorts: '*', excludeInboundPorts: [22], excludeOutboundPorts: [5432], excludeOutboundCidrs: ['10.96.0.0/12', 'fd00::/8'] }))
  })

  test("--inbound-ports keeps an explicit list ('' for none), --ipv6=false writes IPv4 alone", async () => {
    const r = runRemora(['init-iptables', '--dry-run', '--inbound-ports', '8080,9090', '--ipv6=false'])
    expect(await r.exited).toBe(0)
    expect(r.stdout).toBe(dryRunRules({ ...base, inboundPorts: [8080, 9090], ipv6: false }))
    const none = runRemora(['init-iptables', '--dry-run', '--inbound-ports', ''])
    expect(await none.exited).toBe(0)
    expect(none.stdout).toBe(dryRunRules({ ...base, inboundPorts: [] }))
  })

  test('bad flags exit 2 and say which', async () => {
    for (const [args, msg] of [
      [['--inbound-ports', 'http'], /--inbound-ports/],
      [['--ipv6=maybe'], /--ipv6 must be true or false/],
      [['--exclude-outbound-cidrs', 'fd00::/8', '--ipv6=false'], /--ipv6=false writes no IPv6 rules/],
    ] as const) {
      const bad = runRemora(['init-iptables', '--dry-run', ...args])
      expect(await bad.exited).toBe(2)
      expect(bad.stderr).toMatch(msg)
    }
  })
})
