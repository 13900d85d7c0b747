// The authorization case table replayed against a running sidecar with real mTLS callers: the
// same rows that run against evaluate() and `remora check` (authz.test.ts), through the wire.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { validateDocuments, type PathNormalization } from '../../proxy/policy/index.js'
import { createTestPki, type Leaf, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { authzCases, isReplayable, toHttpRequest, type AuthzCase } from './authz.js'

// Beyond isReplayable(): the sidecar's destination port is the test app's (not 8080), and a
// caller's certificate must be in the mesh trust domain to get past TLS at all.
function replayable(c: AuthzCase): boolean {
  if (!isReplayable(c)) return false
  const json = JSON.stringify(c.policies)
  if (/"(not)?[pP]orts"|destination\.port/.test(json)) return false
  const p = c.request.sourcePrincipal
  if (p && !p.startsWith('spiffe://cluster.local/')) return false
  return true
}

const cases = authzCases.filter(replayable)
let pki: TestPki
let app: Upstream
const sidecars = new Map<PathNormalization, TestSidecar>()
const leaves = new Map<string, Leaf>()

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  for (const mode of new Set(cases.map((c) => c.pathNormalization ?? 'MERGE_SLASHES'))) {
    sidecars.set(mode, await startSidecar({ pki, serviceAccount: 'orders', app: app.address, extra: { pathNormalization: mode } }))
  }
  for (const p of new Set(cases.map((c) => c.request.sourcePrincipal).filter((p): p is string => !!p))) leaves.set(p, await pki.issue(p))
})

afterAll(async () => {
  for (const s of sidecars.values()) await s.close()
  await app?.close()
})

test('the replayed subset is large enough to mean something', () => {
  expect(cases.length).toBeGreaterThanOrEqual(20)
})

describe('authz cases through a running sidecar', () => {
  for (const c of cases) {
    test(`${c.name} → ${c.status ?? (c.expect === 'ALLOW' ? 200 : 403)}`, async () => {
      const sc = sidecars.get(c.pathNormalization ?? 'MERGE_SLASHES')!
      const docs = c.policies.map((p, i) => validateDocuments([{ source: `${c.name}#${i}`, text: JSON.stringify(p) }], { trustDomains: ['cluster.local'] }))
      expect(docs.flatMap((d) => d.errors)).toEqual([])
      sc.sidecar.applyPolicies(docs.flatMap((d) => d.policies))
      const req = toHttpRequest(c)
      const hits = app.hits
      const opts = { method: req.method, path: req.path, headers: { ...req.headers, host: req.host } }
      const res = req.sourcePrincipal ? await mtlsRequest(sc.inbound, leaves.get(req.sourcePrincipal)!, pki.caPem, opts) : { refused: false as const, ...(await plainRequest(sc.inbound, opts)) }
      expect(res.refused).toBe(false)
      if (res.refused) return
      const want = c.status ?? (c.expect === 'ALLOW' ? 200 : 403)
      expect(res.status).toBe(want)
      expect(app.hits).toBe(want === 200 ? hits + 1 : hits)
      if (want === 403) {
        expect(res.body).toBe('RBAC: access denied')
        expect(res.headers['x-remora-response-flags']).toBe('AZ')
        // the reason goes to verified mesh peers only
        if (req.sourcePrincipal) expect(res.headers['x-remora-denied-by']).toBeTruthy()
        else expect(res.headers['x-remora-denied-by']).toBeUndefined()
        const line = sc.accessLog.at(-1)!
        expect(line.authz_decision).toBe('DENY')
        expect(line.response_flags).toBe('AZ')
        if (c.policy !== undefined) expect(line.authz_policy).toBe(c.policy)
      }
    })
  }
})
