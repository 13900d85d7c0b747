import { mkdtemp, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startPolicyReload } from '../../proxy/reload.js'
import { createTestPki, type Leaf, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const allowOnly = (sa: string): string => `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allowlist, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/${sa}"] } }] }]
`

let pki: TestPki
let app: Upstream
let orders: TestSidecar
let frontend: Leaf
let batch: Leaf
let dir: string
let file: string
let reload: { close(): Promise<void> }
const results: ({ ok: true; version: string } | { ok: false; errors: string[] })[] = []

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  dir = await mkdtemp(join(tmpdir(), 'remora-reload-'))
  file = join(dir, 'policy.yaml')
  await writeFile(file, allowOnly('frontend'))
  orders = await startSidecar({ pki, serviceAccount: 'orders', app: app.address, policies: allowOnly('frontend') })
  reload = await startPolicyReload(orders.sidecar, [dir], { trustDomain: 'cluster.local', rootNamespace: 'remora-system', logger: orders.logger, onResult: (r) => results.push(r) })
  frontend = await pki.issue('spiffe://cluster.local/ns/shop/sa/frontend')
  batch = await pki.issue('spiffe://cluster.local/ns/shop/sa/batch')
})

afterAll(async () => {
  await reload?.close()
  await orders?.close()
  await app?.close()
})

async function status(leaf: Leaf): Promise<number> {
  const r = await mtlsRequest(orders.inbound, leaf, pki.caPem, { path: '/orders' })
  return r.refused ? -1 : r.status
}

/** Keeps requests flowing from both callers until stopped; records every outcome. */
function traffic(): { statuses: number[]; stop(): Promise<{ statuses: number[] }> } {
  let running = true
  const statuses: number[] = []
  const loops = [frontend, batch].map(async (leaf) => {
    while (running) statuses.push(await status(leaf))
  })
  return {
    statuses,
    async stop() {
      running = false
      await Promise.all(loops)
      return { statuses }
    },
  }
}

describe('policy reload from policies.files', () => {
  test('an edited policy file takes effect within one second, with no failed request during the swap', async () => {
    expect(await status(frontend)).toBe(200)
    expect(await status(batch)).toBe(403)
    const t = traffic()
    await until(() => t.statuses.length >= 6, 2000, 'traffic before the edit')
    const before = results.length
    const edited = Date.now()
    // write-then-rename, as editors and ConfigMap updates do
    await writeFile(join(dir, '.tmp'), allowOnly('batch'))
    await rename(join(dir, '.tmp'), file)
    await until(() => results.length > before && results.at(-1)!.ok, 1000, 'the reload')
    expect(Date.now() - edited).toBeLessThan(1000)
    const atSwap = t.statuses.length
    await until(() => t.statuses.length >= atSwap + 6, 2000, 'traffic after the swap')
    const { statuses } = await t.stop()
    // every request got a decision (200 or 403), none failed or was dropped
    expect(statuses.length).toBeGreaterThanOrEqual(12)
    expect(statuses.every((s) => s === 200 || s === 403)).toBe(true)
    expect(await status(batch)).toBe(200)
    expect(await status(frontend)).toBe(403)
  })

  test('an invalid edit keeps the last good policy and says why', async () => {
    const good = orders.sidecar.version
    expect(await status(batch)).toBe(200)
    const t = traffic()
    const before = results.length
    await writeFile(file, allowOnly('batch').replace('action: ALLOW', 'action: ALOW'))
    await until(() => results.length > before, 1000, 'the reload attempt')
    const { statuses } = await t.stop()
    const last = results.at(-1)!
    expect(last.ok).toBe(false)
    if (!last.ok) expect(last.errors.join('\n')).toMatch(/spec\.action/)
    expect(orders.sidecar.version).toBe(good)
    expect(statuses.every((s) => s === 200 || s === 403)).toBe(true)
    expect(await status(batch)).toBe(200)
    expect(await status(frontend)).toBe(403)
    expect(orders.logger.lines.some((l) => (l.obj as { event?: string }).event === 'config_rejected')).toBe(true)
  })
})
