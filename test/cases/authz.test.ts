// Runs the authorization case table against evaluate() (every case) and against `remora check`
// through the real CLI dispatcher (every case, -o json).
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { stringify } from 'yaml'
import { main } from '../../cli/main.js'
import { compile, evaluate, selectForWorkload, validate, type PolicyDocument } from '../../proxy/policy/index.js'
import { authzCases, DEFAULT_WORKLOAD, invalidPolicyCases, isReplayable, toCheckArgs, toFacts, type AuthzCase } from './authz.js'

function decide(c: AuthzCase) {
  const docs: PolicyDocument[] = []
  for (const p of c.policies) {
    const r = validate(p)
    expect(r.errors, `policy ${JSON.stringify(p)} must be valid`).toEqual([])
    docs.push(r.policy!)
  }
  const wp = selectForWorkload(compile(docs), c.workload ?? DEFAULT_WORKLOAD)
  const f = toFacts(c)
  if (!f.ok) return { status: 400 as const, decision: null }
  const decision = evaluate(wp, f.facts)
  return { status: decision.action === 'ALLOW' ? (200 as const) : (403 as const), decision }
}

describe('the case table', () => {
  test('has at least 120 cases with unique names, each citing its source', () => {
    expect(authzCases.length).toBeGreaterThanOrEqual(120)
    expect(new Set(authzCases.map((c) => c.name)).size).toBe(authzCases.length)
    for (const c of authzCases) expect(c.source, c.name).toMatch(/^(https:\/\/|istio\/istio |envoyproxy\/envoy )/)
  })

  test('has both outcomes, and at least 20 cases a running sidecar can replay', () => {
    expect(authzCases.filter((c) => c.expect === 'ALLOW').length).toBeGreaterThan(40)
    expect(authzCases.filter((c) => c.expect === 'DENY').length).toBeGreaterThan(40)
    expect(authzCases.filter(isReplayable).length).toBeGreaterThanOrEqual(20)
  })
})

describe('evaluate()', () => {
  test.each(authzCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const { status, decision } = decide(c)
    expect(status).toBe(c.status ?? (c.expect === 'ALLOW' ? 200 : 403))
    if (decision === null) {
      expect(c.expect).toBe('DENY')
      return
    }
    expect(decision.action).toBe(c.expect)
    if (c.policy !== undefined) expect(decision.policy).toBe(c.policy)
    if (c.rule !== undefined) expect(decision.ruleIndex).toBe(c.rule)
    if (c.reason !== undefined) expect(decision.reason).toContain(c.reason)
    if (c.audit !== undefined) expect(decision.audit?.policy ?? null).toBe(c.audit)
    if (c.dryRun !== undefined) expect(decision.dryRun.map((d) => ({ policy: d.policy, matched: d.matched }))).toEqual(c.dryRun)
    // an allow always names its rule, unless no ALLOW policy applies at all
    if (decision.action === 'ALLOW' && decision.policy !== null) expect(decision.ruleIndex).not.toBeNull()
  })
})

describe('validate() rejects', () => {
  test.each(invalidPolicyCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const r = validate(c.policy)
    expect(r.policy).toBeNull()
    expect(r.errors).toContainEqual(expect.objectContaining({ code: c.code, path: c.path }))
  })
})

describe('remora check -o json', () => {
  let dir: string
  let out: string[]
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'remora-authz-cases-'))
  })
  afterAll(async () => {
    vi.restoreAllMocks()
    await rm(dir, { recursive: true, force: true })
  })

  // every case of the table goes through the CLI too
  const sample = authzCases

  test.each(sample.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const file = join(dir, `${authzCases.indexOf(c)}.yaml`)
    await writeFile(file, c.policies.length ? c.policies.map((p) => stringify(p)).join('---\n') : '# no policies\n')
    out = []
    const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    let code: number
    try {
      code = await main(toCheckArgs(c, [file]))
    } finally {
      log.mockRestore()
      err.mockRestore()
    }
    const result = JSON.parse(out.join('\n')) as { decision: string; status: number; policy: string | null; rule: number | null; reason: string }
    expect(result.decision).toBe(c.expect)
    expect(result.status).toBe(c.status ?? (c.expect === 'ALLOW' ? 200 : 403))
    expect(code).toBe(c.expect === 'ALLOW' ? 0 : 3)
    if (c.policy !== undefined) expect(result.policy).toBe(c.policy)
    if (c.rule !== undefined) expect(result.rule).toBe(c.rule)
    if (c.reason !== undefined) expect(result.reason).toContain(c.reason)
  })
})
