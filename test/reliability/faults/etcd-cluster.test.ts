// Fault: a 3-member etcd cluster loses a follower, then (the follower back) its leader, under a
// steady apply loop through two control-plane replicas.
//
// Three `etcd` processes on loopback, two `remora control-plane` processes on etcd://all-three,
// three in-process sidecars (orders with the app, frontend, batch) with both replicas as addresses.
// The loop applies group a<i> (two policies in one apply) back to back, alternating replicas, each
// with a client-side deadline. Measured per kill: the applies that failed, and the time from the
// kill to the first apply that succeeds after it. Checked afterwards: every apply answered 200 is
// whole in etcd, no group is there in part, both replicas publish the same version, every sidecar
// runs it with exactly the stored policies, and callers (frontend → orders) got 200 throughout.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { callApi, type AdminTarget } from '../../../cli/admin-client.js'
import { openStore } from '../../../control-plane/store/index.js'
import { budget, MODE, recordFigures } from '../budget.js'
import { rmDir, startMeshSidecar, type MeshSidecar } from '../../helpers/control-plane.js'
import { startEtcdCluster, type TestEtcdCluster, type TestEtcdMember } from '../../helpers/etcd.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { ALLOW_FRONTEND, adminTarget, converged, routes, joinToken, outcomesText, partialGroups, percentile, policyGroup, policyNames, startControlPlaneProcess, startProbe, type ControlPlaneProcess } from './lib.js'

/** Steady applies before each kill, and after the last recovery. */
const STEADY_MS = budget(3_000, 15_000)
/** After a kill: how long applies must keep succeeding to count as recovered. */
const RECOVERED_MS = budget(2_000, 5_000)
const APPLY_DEADLINE_MS = 10_000
const GROUP = 2

let cluster: TestEtcdCluster
let work = ''
const replicas: ControlPlaneProcess[] = []
let admins: AdminTarget[] = []
let app: Upstream
const sidecars: MeshSidecar[] = []

interface ApplyResult {
  i: number
  via: number
  start: number
  end: number
  ok: boolean
  error: string | null
}

beforeAll(async () => {
  cluster = await startEtcdCluster(3) // throws ETCD_INSTALL when etcd is missing: never a skip
  work = await mkdtemp(join(tmpdir(), 'remora-fault-etcd-'))
  replicas.push(await startControlPlaneProcess({ store: cluster.url, work, id: 'replica-a' }))
  replicas.push(await startControlPlaneProcess({ store: cluster.url, work, id: 'replica-b' }))
  const a = await adminTarget(work, 'replica-a', replicas[0]!.address)
  admins = replicas.map((r) => ({ ...a, server: `https://${r.address}` }))
  app = await startUpstream()
  for (const [n, sa] of ['orders', 'frontend', 'batch'].entries()) {
    const addresses = n % 2 === 0 ? [replicas[0]!.address, replicas[1]!.address] : [replicas[1]!.address, replicas[0]!.address]
    sidecars.push(await startMeshSidecar({ addresses, caPem: a.caPem, serviceAccount: sa, app: sa === 'orders' ? app.address : '127.0.0.1:1', token: await joinToken(a, sa) }))
  }
  expect((await callApi(admins[0]!, 'POST', '/v1/apply', { sources: [{ source: 'allow.yaml', text: ALLOW_FRONTEND }] })).status).toBe(200)
  await routes(sidecars[1]!, 'orders.shop')
  await converged(sidecars, async () => {
    const [va, vb] = [await version(0), await version(1)]
    return va === vb ? va : null
  })
}, 120_000)

afterAll(async () => {
  for (const s of sidecars) await s.close()
  for (const r of replicas) await r.kill()
  await app?.close()
  await cluster?.stop()
  if (work) await rmDir(work)
})

async function version(replica: number): Promise<string | null> {
  const r = await callApi(admins[replica]!, 'GET', '/v1/status').catch(() => null)
  return r?.status === 200 ? (r.json.version as string) : null
}

function applyLoop(): { results: ApplyResult[]; stop(): Promise<void> } {
  const results: ApplyResult[] = []
  let running = true
  const loop = (async () => {
    for (let i = 1; running; i++) {
      const via = i % 2
      const start = Date.now()
      const call = callApi(admins[via]!, 'POST', '/v1/apply', { sources: [{ source: `a${i}.yaml`, text: policyGroup(`a${i}`, GROUP) }] }).then(
        (r) => (r.status === 200 ? null : `HTTP ${r.status} ${r.json.error?.code ?? ''}`.trim()),
        (err: NodeJS.ErrnoException) => `transport error ${err.code ?? err.message}`,
      )
      const deadline = new Promise<string>((r) => setTimeout(() => r(`no answer within ${APPLY_DEADLINE_MS} ms`), APPLY_DEADLINE_MS).unref())
      const error = await Promise.race([call, deadline])
      results.push({ i, via, start, end: Date.now(), ok: error === null, error })
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  return {
    results,
    async stop() {
      running = false
      await loop
    },
  }
}

/** Until applies that started after `since` have succeeded for `forMs` without a failure. */
async function recovered(results: ApplyResult[], since: number, forMs: number, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const after = results.filter((r) => r.start >= since)
    const lastFailure = Math.max(since, ...after.filter((r) => !r.ok).map((r) => r.end))
    const okSince = after.filter((r) => r.ok && r.start > lastFailure)
    if (okSince.length >= 2 && Date.now() - lastFailure >= forMs) return
    if (Date.now() > end) throw new Error(`applies did not recover: ${JSON.stringify(after.slice(-5))}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

interface KillFigures {
  member: string
  role: string
  failed: number
  errors: string
  /** Kill → the end of the first apply that started after the kill and succeeded. */
  firstOkMs: number
  /** Kill → the end of the last failed apply (0 when none failed). */
  lastErrorMs: number
  maxLatencyMs: number
  /** Per replica (A, B): kill → its first ok apply, and its slowest apply in the window. */
  perReplica: string
}

function figuresFor(results: ApplyResult[], member: TestEtcdMember, role: string, killedAt: number, until: number): KillFigures {
  const inWindow = results.filter((r) => r.end >= killedAt && r.end <= until)
  const failed = inWindow.filter((r) => !r.ok)
  const firstOk = inWindow.find((r) => r.ok && r.start >= killedAt)
  const errors: Record<string, number> = {}
  for (const f of failed) errors[f.error!] = (errors[f.error!] ?? 0) + 1
  return {
    member: member.name,
    role,
    failed: failed.length,
    errors: failed.length ? outcomesText(errors) : 'none',
    firstOkMs: firstOk ? firstOk.end - killedAt : NaN,
    lastErrorMs: failed.length ? Math.max(...failed.map((f) => f.end)) - killedAt : 0,
    maxLatencyMs: Math.max(...inWindow.map((r) => r.end - r.start)),
    perReplica: [0, 1]
      .map((via) => {
        const mine = inWindow.filter((r) => r.via === via)
        const ok = mine.find((r) => r.ok && r.start >= killedAt)
        return `${via === 0 ? 'A' : 'B'}: ${ok ? ok.end - killedAt : '—'} / ${mine.length ? Math.max(...mine.map((r) => r.end - r.start)) : '—'}`
      })
      .join(', '),
  }
}

describe(`fault: a 3-member etcd cluster loses a follower, then its leader, under a steady apply loop (${MODE})`, () => {
  test('applies recover, none reported applied is lost or half-applied, sidecars serve throughout', async () => {
    const probe = startProbe(sidecars[1]!.outbound, { host: 'orders.shop', path: '/orders' })
    await probe.next((o) => o === '200')
    const loop = applyLoop()
    const kills: KillFigures[] = []
    await new Promise((r) => setTimeout(r, STEADY_MS)) // a steady state to compare against

    // 1. A follower dies: quorum (2 of 3) stays.
    const leader1 = await cluster.waitForLeader()
    const follower = cluster.members.find((m) => m !== leader1)!
    const t1 = Date.now()
    await follower.kill()
    await recovered(loop.results, t1, RECOVERED_MS)
    kills.push(figuresFor(loop.results, follower, 'follower', t1, Date.now()))
    const r1 = Date.now()
    await follower.restart()
    const rejoinedMs = Date.now() - r1

    // 2. With the follower back, the leader dies: the two left elect a new one.
    await new Promise((r) => setTimeout(r, STEADY_MS))
    const leader2 = await cluster.waitForLeader()
    const t2 = Date.now()
    // Applies that ended while the follower was restarting and rejoining (up to the leader kill).
    const rejoin = loop.results.filter((r) => r.end >= r1 && r.end < t2)
    await leader2.kill()
    const elected = await cluster.waitForLeader()
    const electionMs = Date.now() - t2
    await recovered(loop.results, t2, RECOVERED_MS)
    kills.push(figuresFor(loop.results, leader2, 'leader', t2, Date.now()))
    await new Promise((r) => setTimeout(r, STEADY_MS))
    await loop.stop()
    await leader2.restart()

    // Every apply answered 200 is whole in etcd; nothing is there in part.
    const check = await openStore(cluster.url)
    const stored = [...(await check.list('policies/shop/AuthorizationPolicy/')).keys()].map((k) => k.split('/').pop()!.replace(/\.yaml$/, ''))
    await check.close()
    const storedSet = new Set(stored)
    const lost = loop.results.filter((r) => r.ok && !Array.from({ length: GROUP }, (_, n) => `a${r.i}-${n}`).every((n) => storedSet.has(n)))
    const unknownButStored = loop.results.filter((r) => !r.ok && storedSet.has(`a${r.i}-0`))
    // Both replicas publish one version, and every sidecar runs it with exactly what etcd holds.
    const convergeStart = Date.now()
    await converged(sidecars, async () => {
      const [va, vb] = [await version(0), await version(1)]
      return va === vb ? va : null
    })
    const convergeMs = Date.now() - convergeStart
    const seen = await probe.stop()
    const ok = loop.results.filter((r) => r.ok)
    const latencies = ok.map((r) => r.end - r.start)

    recordFigures('fault-etcd-cluster', {
      section: 'faults',
      title: 'Fault: a 3-member etcd cluster loses a follower, then its leader',
      what:
        '`npx vitest run --project reliability test/reliability/faults/etcd-cluster.test.ts` (needs `etcd`). Three etcd members on loopback, two `remora control-plane` replicas on `etcd://` all three, three sidecars. ' +
        `A loop applies two policies per apply back to back (alternating replicas, ${APPLY_DEADLINE_MS / 1000} s client deadline); after ${STEADY_MS / 1000} s a follower is SIGKILLed, restarted once applies have succeeded for ${RECOVERED_MS / 1000} s, ` +
        'then the leader (found through the v3 maintenance status) is SIGKILLed. A probe frontend → orders runs throughout.',
      figures: {
        'applies (ok / failed)': `${ok.length} / ${loop.results.length - ok.length}`,
        'apply latency when fine, p50 / p99 (ms)': `${percentile(latencies, 50)} / ${percentile(latencies, 99)}`,
        ...Object.fromEntries(
          kills.flatMap((k) => [
            [`${k.role} (${k.member}) killed: applies failed`, `${k.failed}${k.failed ? ` (${k.errors})` : ''}`],
            [`${k.role} killed: kill → first apply ok / → last failure (ms)`, `${k.firstOkMs} / ${k.lastErrorMs}`],
            [`${k.role} killed: slowest apply meanwhile (ms)`, k.maxLatencyMs],
            [`${k.role} killed, per replica: kill → first ok / slowest apply (ms)`, k.perReplica],
          ]),
        ),
        'follower restarted: healthy after (ms)': rejoinedMs,
        'follower restarting and rejoining: applies failed / slowest (ms)': `${rejoin.filter((r) => !r.ok).length} / ${Math.max(...rejoin.map((r) => r.end - r.start))}`,
        'leader killed: kill → new leader elected (ms)': `${electionMs} (${elected.name})`,
        'applies answered 200 missing from etcd': lost.length,
        'groups in etcd in part (half-applied)': partialGroups(stored, GROUP).length,
        'failed applies that are nevertheless in etcd (outcome unknown to the caller)': unknownButStored.length,
        'after the loop: both replicas and all sidecars on one version (ms)': convergeMs,
        'what callers saw (probe frontend → orders)': outcomesText(seen.outcomes),
        ...(seen.failures ? { 'failed requests at (ms after the follower / leader kill)': seen.failuresAt.slice(0, 10).map(([at, o]) => `${at - t1} / ${at - t2} ${o}`).join('; ') } : {}),
      },
      verdict: `${lost.length === 0 && partialGroups(stored, GROUP).length === 0 ? 'no apply lost or half-applied' : 'APPLIES LOST OR HALF-APPLIED'}; applies recovered ${kills.map((k) => `${k.firstOkMs} ms after the ${k.role} died`).join(', ')}; ${seen.failures === 0 ? 'callers never saw an error' : `${seen.failures} failed requests`}`,
    })
    expect(lost.map((r) => r.i)).toEqual([])
    expect(partialGroups(stored, GROUP)).toEqual([])
    for (const s of sidecars) expect(policyNames(s).filter((n) => /^a\d+-\d+$/.test(n)).sort()).toEqual(stored.filter((n) => /^a\d+-\d+$/.test(n)).sort())
    expect(seen.outcomes).toEqual({ '200': seen.requests })
  })
})
