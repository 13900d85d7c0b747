import { describe, expect, test } from 'vitest'
import { cleanupCommands, interceptionRules, type InterceptionOptions } from '../../../proxy/interception/index.js'
import { runRemora } from '../../helpers/process.js'

const base: InterceptionOptions = { proxyUid: 1337, inboundPorts: [8080], excludeOutboundPorts: [], excludeOutboundCidrs: [], outboundPort: 15001, inboundPort: 15006 }
const lines = (o: Partial<InterceptionOptions>): string[] => interceptionRules({ ...base, ...o }).trim().split('\n')

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

  test("the sidecar's UID/GID and loopback return before the redirect (no loop), and the redirect is the chain's last rule", () => {
    const out = lines({ proxyGid: 1338 }).filter((x) => x.startsWith('-A REMORA_OUTPUT'))
    expect(out).toEqual([
      '-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A REMORA_OUTPUT -m owner --gid-owner 1338 -j RETURN',
      '-A REMORA_OUTPUT -o lo -j RETURN',
      '-A REMORA_OUTPUT -d 127.0.0.0/8 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ])
  })

  test('excluded outbound ports and CIDRs return before the redirect; a bare address becomes /32', () => {
    const out = lines({ excludeOutboundPorts: [5432, 6379], excludeOutboundCidrs: ['10.96.0.0/12', '169.254.169.254'] }).filter((x) => x.startsWith('-A REMORA_OUTPUT'))
    expect(out.slice(4)).toEqual([
      '-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A REMORA_OUTPUT -p tcp --dport 6379 -j RETURN',
      '-A REMORA_OUTPUT -d 10.96.0.0/12 -j RETURN',
      '-A REMORA_OUTPUT -d 169.254.169.254/32 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ])
  })

  test('no inbound ports: no inbound redirect rule (outbound-only pods such as Jobs)', () => {
    expect(lines({ inboundPorts: [] }).filter((x) => x.startsWith('-A REMORA_INBOUND'))).toEqual([])
  })

  test('bad options are refused before anything is written', () => {
    expect(() => interceptionRules({ ...base, inboundPorts: [70000] })).toThrow(/--inbound-ports/)
    expect(() => interceptionRules({ ...base, inboundPorts: [15006] })).toThrow(/own ports/)
    expect(() => interceptionRules({ ...base, excludeOutboundCidrs: ['fd00::/8'] })).toThrow(/IPv4/)
    expect(() => interceptionRules({ ...base, proxyUid: -1 })).toThrow(/--proxy-uid/)
  })

  test('clean-up removes the hooks first, then flushes and deletes every chain', () => {
    expect(cleanupCommands()).toEqual([
      ['-t', 'nat', '-D', 'PREROUTING', '-p', 'tcp', '-j', 'REMORA_INBOUND'],
      ['-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', 'REMORA_OUTPUT'],
      ...['REMORA_INBOUND', 'REMORA_IN_REDIRECT', 'REMORA_OUTPUT', 'REMORA_REDIRECT'].map((c) => ['-t', 'nat', '-F', c]),
      ...['REMORA_INBOUND', 'REMORA_IN_REDIRECT', 'REMORA_OUTPUT', 'REMORA_REDIRECT'].map((c) => ['-t', 'nat', '-X', c]),
    ])
  })
})

describe('remora init-iptables (the CLI)', () => {
  test('--dry-run prints the rules and touches nothing; bad flags exit 2', async () => {
    const r = runRemora(['init-iptables', '--dry-run', '--inbound-ports', '8080', '--exclude-outbound-ports', '5432'])
    expect(await r.exited).toBe(0)
    expect(r.stdout).toBe(interceptionRules({ ...base, excludeOutboundPorts: [5432] }))
    const bad = runRemora(['init-iptables', '--dry-run', '--inbound-ports', 'http'])
    expect(await bad.exited).toBe(2)
    expect(bad.stderr).toMatch(/--inbound-ports/)
  })
})
