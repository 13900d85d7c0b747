// What JWT authentication adds to a request's latency through a sidecar pair, at a fixed 1,000 rps.
//   npx tsx bench/jwt-latency.ts [--seconds 2] [--rounds 10] [--rps 1000]   (rps per variant)
// Topology (loopback): load ─plain─▶ [orders out] ─mTLS─▶ [payments in] ─▶ app, one pair per
// variant, every pair in the same child process (bench/lib/ab-latency.ts: same-process A/B,
// interleaved slices, rotated order). Every request carries `Authorization: Bearer <ES256 token>`.
//   no-jwt       payments allows the orders identity; the header goes through untouched
//   jwt          payments has a RequestAuthentication (inline JWKS) and allows only the orders
//                identity with a token from the issuer whose `groups` claim holds `buyers`: the
//                token is verified (a repeated token: the verified-token cache), the claims decide,
//                the token is removed before the app
//   jwt-uncached the same, each request with a token never seen before (a full ES256 verify)
// Prints one JSON object.
import { generateKeyPairSync, sign } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { added, runAb, serveAb, type AbStats } from './lib/ab-latency.js'

const VARIANTS = ['no-jwt', 'jwt', 'jwt-uncached'] as const
type Variant = (typeof VARIANTS)[number]
const ISS = 'https://issuer.bench'

const allowOrders = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }]
`

const jwtPolicies = (jwk: unknown): string => `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: payments, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  jwtRules:
    - issuer: ${ISS}
      audiences: [payments]
      jwks: '${JSON.stringify({ keys: [jwk] })}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"], requestPrincipals: ["${ISS}/*"] } }]
      when: [{ key: "request.auth.claims[groups]", values: [buyers] }]
`

async function serve(jwk: unknown): Promise<void> {
  const { createTestPki } = await import('../test/helpers/pki.js')
  const { startSidecar } = await import('../test/helpers/mesh.js')
  const { startUpstream } = await import('../test/helpers/upstream.js')
  const pki = await createTestPki()
  const app = await startUpstream((_req, res) => res.end('ok'))
  const ports: Record<string, number> = {}
  const all: { accessLog: unknown[]; logger: { lines: unknown[] } }[] = []
  for (const v of VARIANTS) {
    const payments = await startSidecar({ pki, serviceAccount: 'payments', app: app.address, policies: v === 'no-jwt' ? allowOrders : jwtPolicies(jwk) })
    const orders = await startSidecar({
      pki,
      serviceAccount: 'orders',
      app: '127.0.0.1:1',
      clusters: [{ name: 'payments.shop', hosts: ['payments.shop'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: ['spiffe://cluster.local/ns/shop/sa/payments'] }],
    })
    all.push(orders, payments)
    ports[v] = orders.outbound
  }
  // The test helper keeps access log and log lines in memory; drop them so memory stays flat.
  setInterval(() => {
    for (const s of all) {
      s.accessLog.length = 0
      s.logger.lines.length = 0
    }
  }, 1000).unref()
  serveAb(ports)
}

const pick = (s: AbStats) => ({ p50_ms: s.p50_ms, p99_ms: s.p99_ms, cpu_us_per_req: s.cpu_us_per_req, errors: s.errors, n: s.n })

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { serve: { type: 'boolean' }, jwk: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, rps: { type: 'string' } } })
  if (values.serve) return serve(JSON.parse(values.jwk!))
  // `npm run bench -- --quick` (BENCH_QUICK=1): a smoke run of the harness, not numbers to quote.
  const quick = process.env.BENCH_QUICK === '1'
  const seconds = Number(values.seconds ?? (quick ? 1 : 2))
  const rounds = Number(values.rounds ?? (quick ? 2 : 10))
  const rps = Number(values.rps ?? 1000)
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid: 'bench-1', alg: 'ES256', use: 'sig' }
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const mint = (sub: string): string => {
    const input = `${b64({ alg: 'ES256', kid: 'bench-1', typ: 'JWT' })}.${b64({ iss: ISS, sub, aud: 'payments', iat: now, exp: now + 3600, groups: ['buyers', 'dev'], email: `${sub}@example.com` })}`
    return `${input}.${sign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
  }
  const repeated = mint('alice')
  // Enough fresh tokens for the warm-up and every slice of the uncached variant (each used once).
  const fresh = Array.from({ length: Math.ceil(rps * (seconds * rounds + 2)) + 100 }, (_, i) => mint(`user-${i}`))
  let nextFresh = 0
  const loadBefore = (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100)
  const common = {
    script: fileURLToPath(import.meta.url),
    serveArgs: ['--jwk', JSON.stringify(jwk)],
    rps,
    sliceSeconds: seconds,
    gapMs: 500,
    request: (v: string) => ({ path: '/charge', headers: { host: 'payments.shop', authorization: `Bearer ${v === 'jwt-uncached' ? fresh[nextFresh++ % fresh.length]! : repeated}` } }),
  }
  // The target's comparison: both routes at 1,000 rps each, request by request in turn, so both see
  // the machine in the same state (the precise way to compare a per-request cost). Then every
  // variant in its own slices, for the CPU each costs and the uncached case.
  const ab = await runAb({ ...common, variants: ['no-jwt', 'jwt'], rounds, interleave: true })
  const r = await runAb({ ...common, variants: VARIANTS, rounds: Math.max(2, Math.ceil(rounds / 2)) })
  const base = r['no-jwt']!
  const jwt = added(ab['no-jwt']!, ab.jwt!)
  console.log(
    JSON.stringify(
      {
        bench: 'jwt-latency',
        topology: 'load → [orders out] → mTLS → [payments in: RequestAuthentication + claims-based AuthorizationPolicy] → app (loopback; every variant a pair in one child process)',
        token: { alg: 'ES256', bytes: repeated.length },
        rps_per_variant: rps,
        slice_seconds: seconds,
        rounds,
        node: process.version,
        loadavg: { before: loadBefore, after: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100) },
        interleaved: { what: 'no-jwt and jwt (cached token), request by request, 1,000 rps each', latency: { 'no-jwt': pick(ab['no-jwt']!), jwt: pick(ab.jwt!) }, added: jwt },
        slices: { what: 'each variant alone in its slices at 1,000 rps, order rotated each round', latency: Object.fromEntries(VARIANTS.map((v: Variant) => [v, pick(r[v]!)])), added_vs_no_jwt: { jwt: added(base, r.jwt!), 'jwt-uncached': added(base, r['jwt-uncached']!) } },
        target: { what: 'added p50 of a JWT-protected route within 10 % of the same route without JWT (interleaved, paired by round)', p50_pct: jwt.p50_paired_pct, met: jwt.p50_paired_pct < 10 },
        detail: { interleaved: ab, slices: r },
      },
      null,
      2,
    ),
  )
}

await main()
