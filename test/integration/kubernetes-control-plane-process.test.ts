// `remora control-plane --source=kubernetes` as a process, with the flags manifests/base passes
// (a kubeconfig here instead of the pod's service account): it comes up on a local API server
// speaking list/watch, marks the policies Valid/Invalid, publishes remora-ca-root with its CA in
// every namespace (and again when the trust bundle changes), refuses `remora apply`, and stops
// cleanly on SIGTERM.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { FileStore } from '../../control-plane/store/index.js'
import { rmDir } from '../helpers/control-plane.js'
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js'
import { until } from '../helpers/mesh.js'
import { createTestPki } from '../helpers/pki.js'
import { runRemora, type Child } from '../helpers/process.js'

const GROUP = 'security.remora.dev/v1'
let api: FakeKubeApi
let dir: string
let cp: Child | null = null

beforeAll(async () => {
  api = await startFakeKubeApi()
  dir = await mkdtemp(join(tmpdir(), 'remora-kube-process-'))
  api.putCore('namespaces', { metadata: { name: 'shop' }, status: { phase: 'Active' } })
  api.apply(GROUP, { kind: 'AuthorizationPolicy', metadata: { name: 'orders-allowlist', namespace: 'shop' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }] }] } })
  api.apply(GROUP, { kind: 'AuthorizationPolicy', metadata: { name: 'bad', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['300.1.1.1'] } }] }] } })
  await writeFile(
    join(dir, 'kubeconfig'),
    `apiVersion: v1
kind: Config
clusters: [{ name: test, cluster: { server: "${api.url}", insecure-skip-tls-verify: true } }]
users: [{ name: cp, user: { token: test-token } }]
contexts: [{ name: test, context: { cluster: test, user: cp } }]
current-context: test
`,
  )
})
afterAll(async () => {
  if (cp && cp.proc.exitCode === null) cp.proc.kill('SIGKILL')
  await api?.close()
  if (dir) await rmDir(dir)
})

test('comes up with the manifests flags, marks policies, publishes remora-ca-root, refuses apply, stops on SIGTERM', async () => {
  const adminFile = join(dir, 'admin.json')
  cp = runRemora(
    ['control-plane', `--store=file://${join(dir, 'store')}`, '--source=kubernetes', `--kubeconfig=${join(dir, 'kubeconfig')}`, '--listen=127.0.0.1:0', `--admin-file=${adminFile}`, '--replica-id=remora-control-plane-0'],
    { env: { KUBERNETES_SERVICE_HOST: '' } },
  )
  await cp.waitForLine((l) => l.event === 'control_plane_started', 30_000)
  await until(() => cp!.stdout.includes('listening on https://'), 10_000, 'the listening line')
  const admin = JSON.parse(await readFile(adminFile, 'utf8')) as { caPem: string }
  expect(api.getCore('configmaps', 'shop', 'remora-ca-root')?.data?.['root-cert.pem']).toBe(admin.caPem)
  await until(() => api.get(GROUP, 'authorizationpolicies', 'shop', 'bad')?.status?.validation !== undefined, 10_000, 'statuses')
  expect(api.get(GROUP, 'authorizationpolicies', 'shop', 'orders-allowlist')!.status.validation).toBe('Valid')
  expect(api.get(GROUP, 'authorizationpolicies', 'shop', 'bad')!.status.validation).toMatch(/^Invalid: /)
  expect(api.authorizations.every((a) => a === 'Bearer test-token')).toBe(true)

  // A second root in the trust bundle (a CA rotation under way) reaches remora-ca-root.
  const next = (await createTestPki()).caPem
  const store = await FileStore.open(join(dir, 'store'), { pollMs: 100 })
  await store.put('ca/trust-bundle.pem', next)
  await store.close()
  await until(() => api.getCore('configmaps', 'shop', 'remora-ca-root')?.data?.['root-cert.pem'] === `${admin.caPem}${next.trim()}\n`, 15_000, 'the new bundle in remora-ca-root')

  const env = { REMORA_CONFIG: adminFile, REMORA_SERVER: '', REMORA_TOKEN: '', REMORA_CA: '' }
  await writeFile(join(dir, 'p.yaml'), `apiVersion: security.remora.dev/v1\nkind: AuthorizationPolicy\nmetadata: { name: x, namespace: shop }\nspec: { action: DENY }\n`)
  const apply = runRemora(['apply', '-f', join(dir, 'p.yaml')], { env })
  expect(await apply.exited).toBe(1)
  expect(apply.stderr).toContain('REMORA_ERR_CP_POLICY_READ_ONLY')
  const got = runRemora(['get', 'authorizationpolicies', '-n', 'shop'], { env })
  expect(await got.exited).toBe(0)
  expect(got.stdout).toMatch(/orders-allowlist/)
  expect(got.stdout).not.toMatch(/\bbad\b/)

  cp.proc.kill('SIGTERM')
  expect(await cp.exited).toBe(0)
  expect(cp.stderr + cp.stdout).not.toContain('test-token')
}, 90_000)

test('--source takes store or kubernetes; --kubeconfig needs --source kubernetes', async () => {
  const bad = runRemora(['control-plane', '--source=consul'])
  expect(await bad.exited).toBe(2)
  expect(bad.stderr).toContain('--source: expected store or kubernetes')
  const lone = runRemora(['control-plane', '--kubeconfig=/nonexistent'])
  expect(await lone.exited).toBe(2)
  expect(lone.stderr).toContain('--kubeconfig needs --source kubernetes')
}, 30_000)
