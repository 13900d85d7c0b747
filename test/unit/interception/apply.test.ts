// Writing the rules, against stand-in iptables commands (shell scripts that log what they are
// asked): both families or neither, IPv6 checked before anything is written, and the fix named
// when IPv6 cannot be had. The real commands in real namespaces: test/system/interception.test.ts.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { applyInterception, interceptionRules, removeInterception, type InterceptionHost, type InterceptionOptions } from '../../../proxy/interception/index.js'

const o: InterceptionOptions = {
  proxyUid: 1337,
  inboundPorts: '*',
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  excludeOutboundCidrs: ['10.96.0.0/12', 'fd00::/8'],
  outboundPort: 15001,
  inboundPort: 15006,
  ipv6: true,
}

let dir: string
let log: string

/** A stand-in command: logs its name and arguments (and its input for *-restore); `-D` finds nothing to delete. */
function fake(name: string, opts: { exit?: number; stderr?: string } = {}): string {
  const file = join(dir, name)
  writeFileSync(
    file,
    `#!/bin/sh
echo "${name} $*" >> "${log}"
case "$*" in *--noflush*) cat >> "${log}";; esac
case "$*" in *" -D "*) exit 1;; esac
${opts.stderr ? `echo "${opts.stderr}" >&2` : ''}
exit ${opts.exit ?? 0}
`,
  )
  chmodSync(file, 0o755)
  return file
}

function host(over: Partial<InterceptionHost> = {}): InterceptionHost {
  return {
    iptables: fake('iptables'),
    iptablesRestore: fake('iptables-restore'),
    ip6tables: fake('ip6tables'),
    ip6tablesRestore: fake('ip6tables-restore'),
    hasIpv6: () => true,
    ...over,
  }
}

const calls = (): string[] => {
  try {
    return readFileSync(log, 'utf8').split('\n').filter((l) => /^ip6?tables(-restore)? /.test(l))
  } catch {
    return []
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'remora-iptables-'))
  log = join(dir, 'log')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('applyInterception', () => {
  test('clears both families, then writes the IPv4 rules with iptables-restore and the IPv6 rules with ip6tables-restore', async () => {
    await applyInterception(o, host())
    const text = readFileSync(log, 'utf8')
    const restores = calls().filter((c) => c.includes('--noflush'))
    expect(restores).toEqual(['iptables-restore --noflush', 'ip6tables-restore --noflush'])
    expect(text).toContain(`iptables-restore --noflush\n${interceptionRules(o, 4)}`)
    expect(text).toContain(`ip6tables-restore --noflush\n${interceptionRules(o, 6)}`)
    // Clean-up of both families comes before the first write (idempotent re-runs).
    const firstWrite = calls().indexOf('iptables-restore --noflush')
    expect(calls().slice(0, firstWrite)).toEqual(expect.arrayContaining(['iptables -t nat -X REMORA_REDIRECT', 'ip6tables -t nat -X REMORA_REDIRECT']))
  })

  test('ipv6: false never runs an IPv6 command', async () => {
    await applyInterception({ ...o, excludeOutboundCidrs: ['10.96.0.0/12'], ipv6: false }, host({ hasIpv6: () => false }))
    expect(calls().some((c) => c.startsWith('ip6tables'))).toBe(false)
    expect(calls()).toContain('iptables-restore --noflush')
  })

  test('a kernel without IPv6 fails with the fix (--ipv6=false) and nothing is run', async () => {
    await expect(applyInterception(o, host({ hasIpv6: () => false }))).rejects.toMatchObject({
      code: 'REMORA_ERR_INTERCEPTION_IPTABLES',
      message: expect.stringMatching(/no IPv6 in this network namespace.*--ipv6=false/),
    })
    expect(calls()).toEqual([])
  })

  test('a missing ip6tables fails with the package and the fix, before any rule is removed or written', async () => {
    await expect(applyInterception(o, host({ ip6tables: join(dir, 'no-such-ip6tables') }))).rejects.toMatchObject({
      code: 'REMORA_ERR_INTERCEPTION_IPTABLES',
      message: expect.stringMatching(/no-such-ip6tables is not installed: install the iptables package.*--ipv6=false/),
    })
    expect(calls()).toEqual([])
  })

  test('a kernel without IPv6 NAT (ip6tables -t nat fails) is named as such', async () => {
    const h = host()
    await expect(applyInterception(o, { ...h, ip6tables: fake('ip6tables', { exit: 3, stderr: "can't initialize ip6tables table nat" }) })).rejects.toMatchObject({
      message: expect.stringMatching(/cannot use the nat table \(exit 3: can't initialize.*ip6table_nat.*--ipv6=false/),
    })
    expect(calls().filter((c) => c.includes('--noflush'))).toEqual([])
  })

  test('a failed IPv6 write takes the IPv4 rules back out: both families or neither', async () => {
    const h = { ...host(), ip6tablesRestore: fake('ip6tables-restore', { exit: 2, stderr: 'line 3 failed' }) }
    await expect(applyInterception(o, h)).rejects.toMatchObject({ code: 'REMORA_ERR_INTERCEPTION_IPTABLES', message: expect.stringMatching(/ip6tables-restore failed \(exit 2\): line 3 failed/) })
    const c = calls()
    const after = c.slice(c.indexOf('ip6tables-restore --noflush') + 1)
    expect(after).toEqual(expect.arrayContaining(['iptables -t nat -D OUTPUT -p tcp -j REMORA_OUTPUT', 'iptables -t nat -X REMORA_OUTPUT']))
    expect(after.some((x) => x.startsWith('ip6tables'))).toBe(false)
  })
})

describe('removeInterception', () => {
  test('removes both families; with ipv6: false only IPv4', async () => {
    await removeInterception({ ipv6: true }, host())
    expect(calls()).toEqual(expect.arrayContaining(['iptables -t nat -X REMORA_INBOUND', 'ip6tables -t nat -X REMORA_INBOUND']))
    rmSync(log)
    await removeInterception({ ipv6: false }, host())
    expect(calls().some((c) => c.startsWith('ip6tables'))).toBe(false)
    expect(calls()).toContain('iptables -t nat -X REMORA_INBOUND')
  })
})
