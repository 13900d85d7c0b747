// The control plane's CA published as the remora-ca-root ConfigMap (root-cert.pem), which the
// injected sidecar mounts to authenticate the control plane at bootstrap: against a local API
// server speaking list/watch for namespaces and configmaps (test/helpers/fake-kube-api.ts).
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { CaRootPublisher, createKubeClient, type KubeClient } from '../../control-plane/kubernetes/index.js'
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/fake-kube-api.js'
import { until } from '../helpers/mesh.js'
import { createTestPki } from '../helpers/pki.js'

let api: FakeKubeApi
let client: KubeClient
let publishers: CaRootPublisher[]
let caPem: string

beforeEach(async () => {
  api = await startFakeKubeApi()
  client = createKubeClient({ server: api.url })
  publishers = []
  caPem = (await createTestPki()).caPem
  for (const ns of ['default', 'shop', 'payments', 'kube-system']) api.putCore('namespaces', { metadata: { name: ns }, status: { phase: 'Active' } })
})
afterEach(async () => {
  for (const p of publishers) await p.close()
  await api.close()
})

async function start(pem = caPem): Promise<CaRootPublisher> {
  const p = await CaRootPublisher.start(client, { caPem: pem, retryMs: 50 })
  publishers.push(p)
  return p
}
const published = (ns: string): string | undefined => api.getCore('configmaps', ns, 'remora-ca-root')?.data?.['root-cert.pem']

describe('the remora-ca-root ConfigMap', () => {
  test('every namespace but kube-system has it when start() resolves, with the CA as root-cert.pem', async () => {
    await start()
    for (const ns of ['default', 'shop', 'payments']) expect(published(ns)).toBe(caPem)
    expect(published('kube-system')).toBeUndefined()
    expect(api.getCore('configmaps', 'shop', 'remora-ca-root')!.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'remora-control-plane' })
  })

  test('a namespace created later gets it through the watch', async () => {
    await start()
    api.putCore('namespaces', { metadata: { name: 'orders' }, status: { phase: 'Active' } })
    await until(() => published('orders') === caPem, 5000, 'the ConfigMap in the new namespace')
  })

  test('deleted or edited by hand, it is put back', async () => {
    await start()
    api.deleteCore('configmaps', 'shop', 'remora-ca-root')
    await until(() => published('shop') === caPem, 5000, 'the deleted ConfigMap restored')
    const cur = api.getCore('configmaps', 'payments', 'remora-ca-root')!
    api.putCore('configmaps', { ...cur, data: { 'root-cert.pem': 'tampered' } })
    await until(() => published('payments') === caPem, 5000, 'the edited ConfigMap restored')
  })

  test('a new trust bundle reaches every namespace (replace with the current resourceVersion)', async () => {
    const p = await start()
    const next = `${caPem}${(await createTestPki()).caPem}`
    await p.update(next)
    for (const ns of ['default', 'shop', 'payments']) expect(published(ns)).toBe(next)
    expect(api.coreWrites.filter((w) => w.startsWith('PUT '))).toHaveLength(3)
  })

  test('a second replica with the same CA writes nothing: replicas converge', async () => {
    await start()
    const writes = api.coreWrites.length
    expect(writes).toBe(3)
    await start()
    // No fixed wait: a hand edit in one namespace is the marker. Both replicas watch ConfigMaps in
    // order, so once the edit is repaired the second replica has handled everything before it; a
    // replica that did not converge would have rewritten shop or payments by then.
    const cur = api.getCore('configmaps', 'default', 'remora-ca-root')!
    api.putCore('configmaps', { ...cur, data: { 'root-cert.pem': 'tampered' } })
    await until(() => published('default') === caPem, 5000, 'the edited ConfigMap restored')
    const later = api.coreWrites.slice(writes)
    expect(later.length).toBeGreaterThanOrEqual(1)
    expect(later.filter((w) => !w.includes('/namespaces/default/'))).toEqual([])
  })
})
