// docs/policy.md and the validation catalog (POLICY_ISSUES) stay in sync, both ways: every code
// has its row with the right severity, and every code the page mentions exists.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { PolicyFilesError } from '../../../proxy/config/policy-files.js'
import { POLICY_ISSUES } from '../../../proxy/policy/index.js'

const DOC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'policy.md')
const text = readFileSync(DOC, 'utf8')

function section(title: string): string {
  const start = text.indexOf(`\n## ${title}\n`)
  expect(start, `docs/policy.md has a "## ${title}" section`).toBeGreaterThan(0)
  const end = text.indexOf('\n## ', start + 1)
  return text.slice(start, end === -1 ? undefined : end)
}

const rows = new Map<string, string>()
for (const m of section('Validation codes').matchAll(/^\| `(REMORA_[A-Z0-9_]+)` \| (error|warning) \| (.+) \|$/gm)) {
  expect(rows.has(m[1]!), `${m[1]} is listed once`).toBe(false)
  rows.set(m[1]!, m[2]!)
}

test('every catalog code has its row in docs/policy.md, with its severity', () => {
  const missing = Object.keys(POLICY_ISSUES).filter((c) => !rows.has(c))
  expect(missing).toEqual([])
  for (const [code, spec] of Object.entries(POLICY_ISSUES)) expect(rows.get(code), code).toBe(spec.severity)
})

test('every code in the docs table exists in the catalog', () => {
  expect([...rows.keys()].filter((c) => !(c in POLICY_ISSUES))).toEqual([])
})

test('every policy code the page mentions anywhere exists', () => {
  const known = new Set([...Object.keys(POLICY_ISSUES), new PolicyFilesError('x', 'y').code])
  const mentioned = new Set([...text.matchAll(/REMORA_(?:ERR|WARN)_POLICY_[A-Z0-9_]+/g)].map((m) => m[0]))
  expect([...mentioned].filter((c) => !known.has(c))).toEqual([])
})

test('the page draws the evaluation order and lists the differences from Istio', () => {
  expect(section('Evaluation order')).toMatch(/DENY[\s\S]*ALLOW/)
  expect(section('Differences from Istio')).toMatch(/^1\. /m)
  expect(section('Path normalization')).toContain('MERGE_SLASHES` (**remora\'s default**)')
})
