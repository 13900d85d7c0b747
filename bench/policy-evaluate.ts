// evaluate() with 1,000 AuthorizationPolicies × 10 rules on one workload: compile time and
// per-decision latency (p50/p99). Standalone: `npx tsx bench/policy-evaluate.ts`; prints JSON.
//
// Two sets are measured. "allowlist" is what service-to-service allowlists look like (each rule
// names its callers by exact SPIFFE ID, as Istio's examples do): the principal index lets a
// request touch only its caller's rules. "unindexed" names the same callers by a suffix pattern
// (`*/ns/x/sa/y`, any trust domain), which no index can serve, so every rule is tried on every
// request: the worst case, shown so that the trade-off is visible. Both sets decide alike.
import { compile, evaluate, selectForWorkload, validateDocuments, type RequestFacts } from '../proxy/policy/index.js'
import { cpus, loadavg } from 'node:os'
import { stringify } from 'yaml'

const POLICIES = 1000
const RULES = 10
/** Iterations per set: the unindexed set tries all 10,000 rules per request, so it gets fewer. */
const ITERATIONS = { allowlist: { warmup: 50_000, samples: 300_000, throughput: 500_000 }, unindexed: { warmup: 500, samples: 3_000, throughput: 3_000 } }
const COMPILE_RUNS = 7
const gc = (globalThis as { gc?: () => void }).gc

type Doc = Record<string, unknown>

function policySet(kind: 'allowlist' | 'unindexed'): Doc[] {
  const docs: Doc[] = []
  for (let p = 0; p < POLICIES; p++) {
    const rules = []
    for (let r = 0; r < RULES; r++) {
      const id = p * RULES + r
      const source =
        kind === 'allowlist'
          ? { principals: [`cluster.local/ns/team-${p}/sa/svc-${r}`, `cluster.local/ns/team-${p}/sa/svc-${r}-canary`] }
          : { principals: [`*/ns/team-${p}/sa/svc-${r}`, `*/ns/team-${p}/sa/svc-${r}-canary`] }
      rules.push({
        from: [{ source }],
        to: [{ operation: { methods: r % 2 ? ['GET', 'HEAD'] : ['POST'], paths: [`/api/v${r}/*`, `/items/${id}`] } }],
        ...(r % 5 === 4 ? { when: [{ key: 'request.headers[x-tenant]', values: [`tenant-${p}`] }] } : {}),
      })
    }
    docs.push({
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: `allow-${String(p).padStart(4, '0')}`, namespace: 'shop' },
      spec: { selector: { matchLabels: { app: 'orders' } }, action: p % 50 === 0 ? 'DENY' : 'ALLOW', rules },
    })
  }
  return docs
}

function facts(principal: string | null, method: string, path: string, headers: Record<string, string> = {}): RequestFacts {
  const ns = principal ? (/\/ns\/([^/]+)\//.exec(principal)?.[1] ?? null) : null
  return {
    source: { principal, namespace: ns, ip: '10.1.2.3' },
    destination: { port: 8080 },
    request: { method, host: 'orders.shop', path, headers, auth: null },
  }
}

const requests: { name: string; facts: RequestFacts; expect: 'ALLOW' | 'DENY' }[] = [
  { name: 'allowed caller, matching rule (mid-set)', facts: facts('spiffe://cluster.local/ns/team-517/sa/svc-3', 'GET', '/api/v3/orders/1'), expect: 'ALLOW' },
  { name: 'allowed caller, header condition', facts: facts('spiffe://cluster.local/ns/team-733/sa/svc-9', 'GET', '/api/v9/x', { 'x-tenant': 'tenant-733' }), expect: 'ALLOW' },
  { name: 'known caller, wrong method (deny by default)', facts: facts('spiffe://cluster.local/ns/team-517/sa/svc-3', 'DELETE', '/api/v3/orders/1'), expect: 'DENY' },
  { name: 'unknown caller (deny by default)', facts: facts('spiffe://cluster.local/ns/web/sa/frontend', 'GET', '/api/v1/x'), expect: 'DENY' },
  { name: 'plaintext caller (deny by default)', facts: facts(null, 'GET', '/'), expect: 'DENY' },
  { name: 'caller hit by a DENY policy', facts: facts('spiffe://cluster.local/ns/team-100/sa/svc-0', 'POST', '/api/v0/x'), expect: 'DENY' },
]

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

function round(n: number, d = 3): number {
  return Math.round(n * 10 ** d) / 10 ** d
}

function measure(kind: 'allowlist' | 'unindexed') {
  const docs = policySet(kind)
  const text = docs.map((d) => stringify(d)).join('---\n')

  let t = process.hrtime.bigint()
  const validated = validateDocuments([{ source: `${kind}.yaml`, text }])
  const validateMs = Number(process.hrtime.bigint() - t) / 1e6
  if (validated.errors.length) throw new Error(`invalid bench policies: ${validated.errors[0]!.message}`)

  // compile() + selectForWorkload(): what a sidecar pays at each snapshot swap. The first run is
  // cold (JIT, and the garbage validation left behind unless --expose-gc lets us collect it first);
  // the median of the following runs is the steady state.
  const workload = { namespace: 'shop', labels: { app: 'orders' } }
  gc?.()
  t = process.hrtime.bigint()
  let wp = selectForWorkload(compile(validated.policies), workload)
  const compileColdMs = Number(process.hrtime.bigint() - t) / 1e6
  // Wall time, and CPU time of this process (what it costs when other processes share the cores).
  const runs: number[] = []
  const cpuRuns: number[] = []
  for (let i = 0; i < COMPILE_RUNS; i++) {
    gc?.()
    const cpu = process.cpuUsage()
    t = process.hrtime.bigint()
    wp = selectForWorkload(compile(validated.policies), workload)
    runs.push(Number(process.hrtime.bigint() - t) / 1e6)
    const used = process.cpuUsage(cpu)
    cpuRuns.push((used.user + used.system) / 1000)
  }
  runs.sort((x, y) => x - y)
  cpuRuns.sort((x, y) => x - y)
  const compileMs = runs[Math.floor(runs.length / 2)]!
  const compileCpuMs = cpuRuns[Math.floor(cpuRuns.length / 2)]!
  const it = ITERATIONS[kind]

  const reqs = requests
  // the bench must measure the decisions it claims to
  for (const r of reqs) {
    const got = evaluate(wp, r.facts).action
    if (got !== r.expect) throw new Error(`${kind}: "${r.name}" decided ${got}, expected ${r.expect}`)
  }

  for (let i = 0; i < it.warmup; i++) evaluate(wp, reqs[i % reqs.length]!.facts)

  // Timer overhead: two back-to-back hrtime calls.
  const over = new Float64Array(50_000)
  for (let i = 0; i < over.length; i++) {
    const a = process.hrtime.bigint()
    over[i] = Number(process.hrtime.bigint() - a)
  }
  over.sort()
  const overheadNs = quantile(over, 0.5)

  const perRequest = reqs.map((r) => {
    const s = new Float64Array(Math.floor(it.samples / reqs.length))
    for (let i = 0; i < s.length; i++) {
      const a = process.hrtime.bigint()
      evaluate(wp, r.facts)
      s[i] = Math.max(0, Number(process.hrtime.bigint() - a) - overheadNs)
    }
    s.sort()
    return { request: r.name, decision: evaluate(wp, r.facts).action, p50Us: round(quantile(s, 0.5) / 1000), p99Us: round(quantile(s, 0.99) / 1000) }
  })

  // All requests interleaved: the figure to compare with the target.
  const all = new Float64Array(it.samples)
  for (let i = 0; i < all.length; i++) {
    const f = reqs[i % reqs.length]!.facts
    const a = process.hrtime.bigint()
    evaluate(wp, f)
    all[i] = Math.max(0, Number(process.hrtime.bigint() - a) - overheadNs)
  }
  all.sort()

  // Throughput without per-call timers.
  const n = it.throughput
  const cpu0 = process.cpuUsage()
  t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) evaluate(wp, reqs[i % reqs.length]!.facts)
  const meanUs = Number(process.hrtime.bigint() - t) / n / 1000
  const cpu1 = process.cpuUsage(cpu0)
  const meanCpuUs = (cpu1.user + cpu1.system) / n

  return {
    set: kind,
    policies: POLICIES,
    rulesPerPolicy: RULES,
    appliedPolicies: wp.authzPolicyCount,
    validateMs: round(validateMs, 1),
    compileColdMs: round(compileColdMs, 1),
    compileMs: round(compileMs, 1),
    compileRunsMs: runs.map((r) => round(r, 1)),
    compileCpuMs: round(compileCpuMs, 1),
    decision: { p50Us: round(quantile(all, 0.5) / 1000), p99Us: round(quantile(all, 0.99) / 1000), p999Us: round(quantile(all, 0.999) / 1000), meanUs: round(meanUs), meanCpuUs: round(meanCpuUs) },
    perRequest,
    timerOverheadNs: overheadNs,
  }
}

const loadAverageBefore = loadavg().map((l) => round(l, 2))
const results = [measure('allowlist'), measure('unindexed')]
console.log(
  JSON.stringify(
    {
      bench: 'policy-evaluate',
      node: process.version,
      gcExposed: gc !== undefined,
      cpus: cpus().length,
      loadAverageBefore,
      loadAverageAfter: loadavg().map((l) => round(l, 2)),
      target: { p99Us: 5, compileMs: 200, set: 'allowlist' },
      results,
    },
    null,
    2,
  ),
)
