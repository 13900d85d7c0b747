// Shared parts of the fault scenarios: a `remora control-plane` child process, a traffic probe that
// tells what callers see while something fails, and the "whole apply or none of it" check.
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { callApi, type AdminTarget } from '../../../cli/admin-client.js'
import type { MeshSidecar } from '../../helpers/control-plane.js'
import { plainRequest } from '../../helpers/mesh.js'
import { runRemora, type Child } from '../../helpers/process.js'

export interface ControlPlaneProcess {
  child: Child
  address: string
  /** SIGKILL; resolves once it exited. */
  kill(): Promise<void>
}

/** `remora control-plane` (through tsx) on `store`; resolves once it listens. */
export async function startControlPlaneProcess(o: { store: string; work: string; id: string; port?: number; args?: string[] }): Promise<ControlPlaneProcess> {
  const child = runRemora([
    'control-plane', '--store', o.store, '--listen', `127.0.0.1:${o.port ?? 0}`, '--replica-id', o.id, '--grace', '5s',
    '--admin-file', join(o.work, `admin-${o.id}.json`), ...(o.args ?? []),
  ])
  const end = Date.now() + 30_000
  for (;;) {
    const m = /listening on https:\/\/([\d.]+:\d+)/.exec(child.stdout)
    if (m) {
      return {
        child,
        address: m[1]!,
        async kill() {
          if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL')
          await child.exited
        },
      }
    }
    if (child.proc.exitCode !== null) throw new Error(`control plane ${o.id} exited: ${child.stderr.slice(-2000)}`)
    if (Date.now() > end) {
      child.proc.kill('SIGKILL')
      throw new Error(`control plane ${o.id} did not start: ${child.stderr.slice(-2000)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The CLI's admin file written by a replica's first start, as a target for `callApi`. */
export async function adminTarget(work: string, id: string, server: string): Promise<AdminTarget> {
  const f = JSON.parse(await readFile(join(work, `admin-${id}.json`), 'utf8')) as { token: string; caPem: string; identity: string }
  return { server: `https://${server}`, token: f.token, caPem: f.caPem, identity: f.identity }
}

export async function joinToken(admin: AdminTarget, sa: string): Promise<string> {
  const r = await callApi(admin, 'POST', '/v1/tokens', { namespace: 'shop', serviceAccount: sa, ttlSeconds: 3600 })
  if (r.status !== 200) throw new Error(`token for ${sa}: ${r.status} ${JSON.stringify(r.json)}`)
  return String(r.json.token)
}

/** What callers saw: each distinct `status flags` with its count, and the failures' time span. */
export interface ProbeSummary {
  requests: number
  /** `200`, `503 UF`, `transport error: ECONNRESET`… → count. */
  outcomes: Record<string, number>
  failures: number
  /** ms from the probe's start of the first and last failure (null when none). */
  firstFailureMs: number | null
  lastFailureMs: number | null
  /** Wall-clock time (ms) and outcome of the first 100 failures, to line them up with the fault. */
  failuresAt: [at: number, outcome: string][]
}

export interface Probe {
  /** Counts so far. */
  readonly summary: ProbeSummary
  /** Resolves after the next request that ends as `pred` says (e.g. a 200 after an outage). */
  next(pred: (outcome: string) => boolean, timeoutMs?: number): Promise<number>
  stop(): Promise<ProbeSummary>
}

/**
 * Requests `path` through `from`'s outbound listener to `host`, back to back with `gapMs` between
 * them (fresh connection each: every request goes through the sidecar's current state).
 */
export function startProbe(from: number, o: { host: string; path?: string; gapMs?: number; headers?: Record<string, string> }): Probe {
  const t0 = Date.now()
  const s: ProbeSummary = { requests: 0, outcomes: {}, failures: 0, firstFailureMs: null, lastFailureMs: null, failuresAt: [] }
  const waiters = new Set<(outcome: string) => void>()
  let running = true
  const loop = (async () => {
    while (running) {
      let outcome: string
      try {
        const r = await plainRequest(from, { path: o.path ?? '/', headers: { host: o.host, ...o.headers } })
        const flags = r.headers['x-remora-response-flags']
        outcome = `${r.status}${flags ? ` ${String(flags)}` : ''}`
      } catch (err) {
        outcome = `transport error: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      }
      s.requests++
      s.outcomes[outcome] = (s.outcomes[outcome] ?? 0) + 1
      if (outcome !== '200') {
        s.failures++
        const at = Date.now() - t0
        s.firstFailureMs ??= at
        s.lastFailureMs = at
        if (s.failuresAt.length < 100) s.failuresAt.push([Date.now(), outcome])
      }
      for (const w of [...waiters]) w(outcome)
      await new Promise((r) => setTimeout(r, o.gapMs ?? 20))
    }
  })()
  return {
    summary: s,
    next(pred, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const start = Date.now()
        const timer = setTimeout(() => {
          waiters.delete(w)
          reject(new Error(`probe: no matching outcome within ${timeoutMs} ms (${JSON.stringify(s.outcomes)})`))
        }, timeoutMs)
        const w = (outcome: string): void => {
          if (!pred(outcome)) return
          clearTimeout(timer)
          waiters.delete(w)
          resolve(Date.now() - start)
        }
        waiters.add(w)
      })
    },
    async stop() {
      running = false
      await loop
      return s
    },
  }
}

export const outcomesText = (o: Record<string, number>): string =>
  Object.entries(o)
    .sort(([, a], [, b]) => b - a)
    .map(([k, v]) => `${k} ×${v.toLocaleString('en-US')}`)
    .join(', ')

/** Until every sidecar runs `version` (its last good snapshot); resolves with the ms it took. */
export async function converged(sidecars: readonly MeshSidecar[], version: () => string | null | Promise<string | null>, timeoutMs = 30_000): Promise<number> {
  const start = Date.now()
  for (;;) {
    const want = await version()
    if (want !== null && sidecars.every((s) => s.client.lastGoodVersion === want)) return Date.now() - start
    if (Date.now() - start > timeoutMs) throw new Error(`not converged on ${want}: ${JSON.stringify(sidecars.map((s) => [s.spiffeId, s.client.lastGoodVersion]))}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Until `s` routes to the cluster `name` (discovery settles after the registrations: a version can exist without it). */
export async function routes(s: MeshSidecar, name: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(s.sidecar.configDump() as { clusters: { name: string }[] }).clusters.some((c) => c.name === name)) {
    if (Date.now() > end) throw new Error(`${s.spiffeId} has no cluster ${name}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Names of the policies a sidecar enforces now. */
export function policyNames(s: MeshSidecar): string[] {
  return ((s.sidecar.configDump() as { policies: { name: string }[] }).policies ?? []).map((p) => p.name)
}

/**
 * Applies are groups of documents named `<group>-<n>` (n = 0..size-1). Returns the groups that are
 * present only in part: a half-applied write. Empty when every group is whole or absent.
 */
export function partialGroups(names: Iterable<string>, size: number): string[] {
  const count = new Map<string, number>()
  for (const n of names) {
    const m = /^(.*)-(\d+)$/.exec(n)
    if (m) count.set(m[1]!, (count.get(m[1]!) ?? 0) + 1)
  }
  return [...count].filter(([, c]) => c !== size).map(([g, c]) => `${g} (${c}/${size})`)
}

/** n AuthorizationPolicy documents `<group>-0..n-1` in one YAML stream: ALLOW rules for orders that admit no one new. */
export function policyGroup(group: string, n: number): string {
  return Array.from(
    { length: n },
    (_, i) => `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: ${group}-${i}, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }], to: [{ operation: { paths: ["/${group}/${i}"] } }] }]
`,
  ).join('---\n')
}

export const ALLOW_FRONTEND = `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }] }]
`

export const percentile = (xs: readonly number[], p: number): number => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}
