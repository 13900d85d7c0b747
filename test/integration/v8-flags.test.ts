import { readFileSync } from 'node:fs'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki } from '../helpers/pki.js'
import { runRemora, type Child } from '../helpers/process.js'

// `remora proxy` sizes V8 for itself (proxy/main.ts, SIDECAR_V8_FLAGS). Where Node can replace its
// own process (process.execve, Node >= 22.15: the image's Node 26) it starts again with the flags,
// same PID; on older Node it starts as it is and says which flags NODE_OPTIONS should carry.
const CAN_EXECVE = typeof (process as { execve?: unknown }).execve === 'function'
let dir = ''
let child: Child | undefined

beforeAll(async () => {
  const pki = await createTestPki()
  dir = await mkdtemp(join(tmpdir(), 'remora-v8-'))
  await pki.writeFiles(dir, 'payments', await pki.issue('spiffe://cluster.local/ns/shop/sa/payments'))
  await writeFile(
    join(dir, 'sidecar.yaml'),
    `apiVersion: remora.dev/v1
kind: SidecarConfig
workload: { namespace: shop, serviceAccount: payments }
identity: { certFile: payments.pem, keyFile: payments-key.pem, caFile: ca.pem }
inbound: { port: 0, bind: 127.0.0.1, app: "127.0.0.1:9" }
outbound: { port: 0 }
admin: { port: 0 }
accessLog: { enabled: false }
telemetry: { metrics: { port: 0, bind: 127.0.0.1 } }
`,
  )
}, 60_000)

afterEach(async () => {
  await child?.stop()
  child = undefined
})

/** The command line the sidecar runs with now, and the log lines up to sidecar_started. */
async function start(env: NodeJS.ProcessEnv): Promise<{ cmdline: string[]; lines: Record<string, unknown>[] }> {
  child = runRemora(['proxy', '--config', join(dir, 'sidecar.yaml')], { env })
  await child.waitForLine((o) => o.event === 'sidecar_started', 30_000)
  const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
  const lines = child.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { cmdline, lines }
}

describe('remora proxy sizes V8 for itself', () => {
  test.runIf(CAN_EXECVE)('on a Node with process.execve the same process runs with the flags, before anything else started', async () => {
    const { cmdline, lines } = await start({ REMORA_V8_FLAGS: undefined, NODE_OPTIONS: undefined })
    expect(cmdline.slice(1, 3)).toEqual(['--max-semi-space-size=4', '--max-old-space-size=256'])
    expect(lines.filter((l) => l.event === 'sidecar_started')).toHaveLength(1)
    expect(lines.some((l) => l.event === 'v8_flags_not_applied')).toBe(false)
  })

  test.runIf(!CAN_EXECVE)('on a Node without process.execve it starts as it is and names the flags NODE_OPTIONS should carry', async () => {
    const { cmdline, lines } = await start({ REMORA_V8_FLAGS: undefined, NODE_OPTIONS: undefined })
    expect(cmdline.some((a) => a.startsWith('--max-semi-space-size'))).toBe(false)
    expect(lines.find((l) => l.event === 'v8_flags_not_applied')).toMatchObject({ level: 30, flags: ['--max-semi-space-size=4', '--max-old-space-size=256'] })
  })

  test('REMORA_V8_FLAGS=off: no restart and no message', async () => {
    const { cmdline, lines } = await start({ REMORA_V8_FLAGS: 'off' })
    expect(cmdline.some((a) => a.startsWith('--max-'))).toBe(false)
    expect(lines.some((l) => l.event === 'v8_flags_not_applied')).toBe(false)
  })

  test('flags already in NODE_OPTIONS are not asked for again', async () => {
    const { cmdline, lines } = await start({ REMORA_V8_FLAGS: undefined, NODE_OPTIONS: '--max-semi-space-size=4 --max-old-space-size=256' })
    expect(cmdline.some((a) => a.startsWith('--max-'))).toBe(false)
    expect(lines.some((l) => l.event === 'v8_flags_not_applied')).toBe(false)
  })

  test('an invalid REMORA_V8_FLAGS stops the start with exit code 2, naming the variable', async () => {
    child = runRemora(['proxy', '--config', join(dir, 'sidecar.yaml')], { env: { REMORA_V8_FLAGS: '--max-semi-space-size=4 $(id)' } })
    expect(await child.exited).toBe(2)
    expect(child.stderr).toContain('REMORA_V8_FLAGS: expected --flag or --flag=value separated by spaces, or off; got "$(id)"')
  })
})
