// `remora validate` and `remora check` through the real dispatcher: exit codes and output formats.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, test, vi } from 'vitest'
import { main } from '../../../cli/main.js'

let dir: string
let out: string[]
let err: string[]

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-policy-cli-'))
  out = []
  err = []
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
})

afterEach(async () => {
  vi.restoreAllMocks()
  await rm(dir, { recursive: true, force: true })
})

const GOOD = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/web/sa/frontend"] } }]
    to: [{ operation: { methods: ["GET"], paths: ["/api/*"] } }]
`
const BAD = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bad, namespace: shop }
spec:
  action: CUSTOM
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/web/sa/frontend", "not a principal"] } }]
`
const WARN = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-nothing, namespace: shop }
spec: { action: DENY }
`

async function write(name: string, text: string): Promise<string> {
  const f = join(dir, name)
  await writeFile(f, text)
  return f
}

test('validate: valid files exit 0 with a summary', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(['validate', '-f', f])).toBe(0)
  expect(out).toEqual(['valid: 1 AuthorizationPolicy'])
})

test('validate: errors exit 2, one "path: message (code)" line each, on stdout', async () => {
  const f = await write('bad.yaml', BAD)
  expect(await main(['validate', '-f', f])).toBe(2)
  expect(out[0]).toBe(`${f}#0:1: spec.action: action CUSTOM (external authorization) is not supported by remora (REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED)`)
  expect(out[1]).toMatch(/^.*#0:1: spec\.rules\[0\]\.from\[0\]\.source\.principals\[1\]: .* \(REMORA_ERR_POLICY_BAD_PRINCIPAL\)$/)
  expect(out[2]).toBe('invalid: 2 error(s)')
})

test('validate: warnings go to stderr and do not fail', async () => {
  const f = await write('warn.yaml', WARN)
  expect(await main(['validate', '-f', dir])).toBe(0)
  expect(err.join('\n')).toContain(`warning: ${f}#0:1: spec.rules: `)
  expect(err.join('\n')).toContain('(REMORA_WARN_POLICY_DENY_NO_RULES)')
  expect(out).toEqual(['valid: 1 AuthorizationPolicy, 1 warning(s)'])
})

test('validate -o json', async () => {
  const f = await write('bad.yaml', BAD)
  expect(await main(['validate', '-f', f, '-o', 'json'])).toBe(2)
  const r = JSON.parse(out.join('\n'))
  expect(r.valid).toBe(false)
  expect(r.errors[0]).toEqual({ source: f, doc: 0, line: 1, path: 'spec.action', code: 'REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', severity: 'error', message: expect.any(String) })
})

test('validate: --trust-domain turns on the trust-domain warning', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(['validate', '-f', f, '--trust-domain', 'example.org'])).toBe(0)
  expect(err.join('\n')).toContain('REMORA_WARN_POLICY_TRUST_DOMAIN')
})

test('validate: bad input exits 2 (no -f, missing file, unknown flag, bad -o)', async () => {
  expect(await main(['validate'])).toBe(2)
  expect(await main(['validate', '-f', join(dir, 'missing.yaml')])).toBe(2)
  expect(err.join('\n')).toContain('no such file or directory')
  expect(await main(['validate', '--frobnicate'])).toBe(2)
  expect(await main(['validate', '-f', dir, '-o', 'yaml'])).toBe(2)
})

const checkArgs = (f: string, ...more: string[]) => ['check', '-f', f, '--dest-namespace', 'shop', '--dest-labels', 'app=orders', ...more]

test('check: allow exits 0 and prints the rule in text', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/api/orders?id=1', '--source-principal', 'spiffe://cluster.local/ns/web/sa/frontend'))).toBe(0)
  expect(out[0]).toBe('ALLOW (200)  allow by shop/allow-frontend rules[0]')
  expect(out[1]).toBe('request:  GET orders.shop /api/orders (port 80) from spiffe://cluster.local/ns/web/sa/frontend at 127.0.0.1')
})

test('check: deny exits 3 and says why the policy did not match', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(checkArgs(f, '--method', 'POST', '--path', '/api/orders', '--source-principal', 'cluster.local/ns/web/sa/frontend'))).toBe(3)
  expect(out[0]).toBe('DENY (403)  deny: no ALLOW policy matched (1 applied: shop/allow-frontend)')
  expect(out.join('\n')).toContain('ALLOW shop/allow-frontend: rules[0].to[0].operation.methods did not match "POST"')
})

test('check -o json: the decision, status, policy, rule, reason and dry run', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/api/x', '-o', 'json'))).toBe(3)
  const r = JSON.parse(out.join('\n'))
  expect(r).toMatchObject({ decision: 'DENY', status: 403, policy: null, rule: null, dryRun: [] })
  expect(r.policies).toEqual([{ policy: 'shop/allow-frontend', action: 'ALLOW', dryRun: false, matched: false, rule: null, why: 'rules[0].from[0].source.principals did not match (none)' }])
})

test('check: a path the sidecar rejects is status 400 (exit 3, not 2)', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/api%2Fx', '-o', 'json'))).toBe(3)
  expect(JSON.parse(out.join('\n'))).toMatchObject({ decision: 'DENY', status: 400, policy: null })
})

test('check --path-normalization BASE keeps //', async () => {
  const f = await write('deny.yaml', 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-admin, namespace: shop }\nspec: { action: DENY, rules: [{ to: [{ operation: { paths: ["/admin"] } }] }] }\n')
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '//admin'))).toBe(3)
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '//admin', '--path-normalization', 'BASE'))).toBe(0)
})

test('check: bad input exits 2', async () => {
  const f = await write('good.yaml', GOOD)
  expect(await main(checkArgs(f, '--path', '/'))).toBe(2) // no --method
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/', '--source-principal', 'not a spiffe id'))).toBe(2)
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/', '--claims', '{"a":1}'))).toBe(2) // claims without a request principal
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/', '--port', '99999'))).toBe(2)
  expect(await main(checkArgs(f, '--method', 'GET', '--path', '/', '--path-normalization', 'NONE'))).toBe(2)
  const bad = await write('bad.yaml', BAD)
  expect(await main(checkArgs(bad, '--method', 'GET', '--path', '/'))).toBe(2)
  expect(err.join('\n')).toContain('REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED')
})
