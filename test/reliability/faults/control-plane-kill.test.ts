// Fault: the control plane is SIGKILLed while an apply is being written and pushed to several
// sidecars, then started again on the same store and port.
//
// A `remora control-plane` process on a file store; five in-process sidecars (orders with the app,
// frontend, batch, reports, audit) stream from it. Each round applies one group of N policies in a
// single `apply` (`g<k>-0..N-1`) and kills the control plane either a few ms after the request went
// out (inside the store writes) or the moment the first sidecar has the new snapshot (inside the
// push). A probe frontend → orders runs all along. Checked each round: callers keep getting 200
// from the last good snapshot (no 503 NC), every sidecar reconnects and ends on the control plane's
// version, the store holds each group whole or not at all (whole when the apply answered 200), and
// no sidecar ever ran a snapshot with part of a group.
import { watch } from 'node:fs'
import { mkdtemp, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { callApi, type AdminTarget } from '../../../cli/admin-client.js'
import { budget, MODE, recordFigures } from '../budget.js'
import { rmDir, startMeshSidecar, type MeshSidecar } from '../../helpers/control-plane.js'
import { freePort, startUpstream, type Upstream } from '../../helpers/upstream.js'
import { ALLOW_FRONTEND, adminTarget, converged, routes, joinToken, outcomesText, partialGroups, percentile, policyGroup, policyNames, startControlPlaneProcess, startProbe, type ControlPlaneProcess } from './lib.js'

const ROUNDS = budget(6, 18)
const GROUP = 20 // documents per apply
const SERVICES = ['orders', 'frontend', 'batch', 'reports', 'audit']

let work = ''
let port = 0
let cp: ControlPlaneProcess | null = null
let admin: AdminTarget
let app: Upstream
const sidecars: MeshSidecar[] = []
/** Every snapshot each sidecar ran, as the names of its policies. */
const ran: { sidecar: string; version: string | null; names: string[] }[] = []

const store = (): string => `file://${join(work, 'store')}`
const startCp = async (): Promise<ControlPlaneProcess> => (cp = await startControlPlaneProcess({ store: store(), work, id: 'cp', port }))
const cpVersion = async (): Promise<string | null> => {
  const r = await callApi(admin, 'GET', '/v1/status').catch(() => null)
  return r?.status === 200 ? (r.json.version as string) : null
}
const storedNames = async (): Promise<string[]> => (await readdir(join(work, 'store', 'policies', 'shop', 'AuthorizationPolicy')).catch(() => [])).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5))

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'remora-fault-cp-kill-'))
  port = await freePort()
  await startCp()
  admin = await adminTarget(work, 'cp', cp!.address)
  app = await startUpstream()
  for (const sa of SERVICES) {
    const s = await startMeshSidecar({ addresses: [cp!.address], caPem: admin.caPem, serviceAccount: sa, app: sa === 'orders' ? app.address : '127.0.0.1:1', token: await joinToken(admin, sa) })
    s.client.events.on('applied', (e: { version: string }) => ran.push({ sidecar: sa, version: e.version, names: policyNames(s) }))
    sidecars.push(s)
  }
  const r = await callApi(admin, 'POST', '/v1/apply', { sources: [{ source: 'allow.yaml', text: ALLOW_FRONTEND }] })
  expect(r.status).toBe(200)
  await routes(sidecars[1]!, 'orders.shop')
  await converged(sidecars, cpVersion)
}, 120_000)

afterAll(async () => {
  for (const s of sidecars) await s.close()
  await cp?.kill()
  await app?.close()
  if (work) await rmDir(work)
})

describe(`fault: the control plane is killed during a push (${MODE})`, () => {
  test('sidecars serve on the last good snapshot, reconnect, converge; no apply lost or half-applied', async () => {
    const frontend = sidecars[1]!
    const probe = startProbe(frontend.outbound, { host: 'orders.shop', path: '/orders' })
    await probe.next((o) => o === '200')
    const rounds: { k: number; when: string; answer: string; restartMs: number; convergeMs: number; inStore: string }[] = []
    for (let k = 1; k <= ROUNDS; k++) {
      const group = `g${k}`
      // Where the kill lands, in turn: the first file the apply writes into the store's policy
      // folder (inside the store writes); the first sidecar running a snapshot with the group
      // (inside the push); a fixed delay after the request went out.
      const when = (['store-write', 'push', 'delay'] as const)[(k - 1) % 3]!
      const delayMs = [10, 25, 40][Math.floor((k - 1) / 3) % 3]!
      const folder = join(work, 'store', 'policies', 'shop', 'AuthorizationPolicy')
      let watcher: ReturnType<typeof watch> | null = null
      const firstWrite = new Promise<void>((resolve) => (watcher = watch(folder, () => resolve())))
      const firstHasIt = new Promise<void>((resolve) => {
        const on = (): void => {
          if (!ran.some((r) => r.names.some((n) => n.startsWith(`${group}-`)))) return
          for (const s of sidecars) s.client.events.off('applied', on)
          resolve()
        }
        for (const s of sidecars) s.client.events.on('applied', on)
      })
      const applied = callApi(admin, 'POST', '/v1/apply', { sources: [{ source: `${group}.yaml`, text: policyGroup(group, GROUP) }] }).then(
        (r) => (r.status === 200 ? 'ok' : `HTTP ${r.status} ${r.json.error?.code ?? ''}`),
        (err: NodeJS.ErrnoException) => `error ${err.code ?? err.message}`,
      )
      if (when === 'push') await Promise.race([firstHasIt, applied])
      else if (when === 'store-write') await Promise.race([firstWrite, applied])
      else await new Promise((r) => setTimeout(r, delayMs))
      await cp!.kill()
      ;(watcher as ReturnType<typeof watch> | null)?.close()
      const answer = await applied
      // While it is down: still 200 from the last snapshot.
      await probe.next((o) => o === '200')
      const t0 = Date.now()
      const reconnected = Promise.all(sidecars.map((s) => s.client.next('connected', 60_000)))
      await startCp()
      const restartMs = Date.now() - t0
      await reconnected
      await converged(sidecars, cpVersion)
      const names = await storedNames()
      const has = names.filter((n) => n.startsWith(`${group}-`)).length
      rounds.push({ k, when: when === 'push' ? 'first sidecar has it' : when === 'store-write' ? 'first store file written' : `${delayMs} ms after the request`, answer, restartMs, convergeMs: Date.now() - t0, inStore: `${has}/${GROUP}` })
      expect(partialGroups(names, GROUP), `store after round ${k}`).toEqual([])
      if (answer === 'ok') expect(has, `round ${k} answered 200`).toBe(GROUP)
      // Every sidecar enforces exactly what the store holds.
      for (const s of sidecars) expect(policyNames(s).sort()).toEqual([...names].sort())
    }
    const seen = await probe.stop()
    const half = ran.filter((r) => partialGroups(r.names, GROUP).length > 0)
    const totals = rounds.map((r) => r.convergeMs)
    recordFigures('fault-control-plane-kill', {
      section: 'faults',
      title: 'Fault: the control plane is killed (SIGKILL) during a push',
      what:
        '`npx vitest run --project reliability test/reliability/faults/control-plane-kill.test.ts`. A `remora control-plane` process on a file store, five sidecars streaming from it. ' +
        `${ROUNDS} rounds: one apply of ${GROUP} policies, then SIGKILL, in turn, at the first file the apply writes into the store (inside the store writes), the moment the first sidecar runs the new snapshot (inside the push), or 10–40 ms after the request went out; ` +
        'the control plane is started again on the same store and port. A probe frontend → orders runs throughout.',
      figures: {
        rounds: ROUNDS,
        'what callers saw (probe frontend → orders)': outcomesText(seen.outcomes),
        'applies answered 200 / failed (killed before the answer)': `${rounds.filter((r) => r.answer === 'ok').length} / ${rounds.filter((r) => r.answer !== 'ok').length}`,
        'kill → every sidecar on the new control plane\'s version, p50 / max': `${percentile(totals, 50)} / ${Math.max(...totals)} ms`,
        'of which the control plane\'s restart (tsx), p50': `${percentile(rounds.map((r) => r.restartMs), 50)} ms`,
        'snapshots run by sidecars / with part of an apply': `${ran.length} / ${half.length}`,
        'groups half-written in the store': 0,
      },
      verdict: `${seen.failures === 0 ? 'callers never saw an error' : `${seen.failures} failed requests`}; every apply whole or absent in the store and on every sidecar; all sidecars converged each round`,
      table: { columns: ['round', 'killed', 'apply answer', 'in store', 'restart (ms)', 'kill → converged (ms)'], rows: rounds.map((r) => [r.k, r.when, r.answer, r.inStore, r.restartMs, r.convergeMs]) },
    })
    expect(half.map((r) => `${r.sidecar}@${r.version}: ${partialGroups(r.names, GROUP).join(', ')}`)).toEqual([])
    expect(seen.outcomes).toEqual({ '200': seen.requests })
  })
})
