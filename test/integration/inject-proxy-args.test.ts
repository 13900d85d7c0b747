// The sidecar container `remora inject` writes must start: its args, after the kubelet expands
// $(VAR) from the container's env, go through `remora proxy`'s own parseProxyArgs and
// loadSidecarConfig without an error, for a Deployment (app port) and a Job (no port). A sidecar
// without an app port refuses inbound connections and says why.
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { loadSidecarConfig } from '../../proxy/config/index.js'
import { parseProxyArgs } from '../../proxy/main.js'
import { rmDir } from '../helpers/control-plane.js'
import { mtlsRequest, startSidecar, type TestSidecar } from '../helpers/mesh.js'
import { createTestPki } from '../helpers/pki.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { runRemora } from '../helpers/process.js'

const WORKLOADS = `apiVersion: apps/v1
kind: Deployment
metadata: { name: orders, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  template:
    metadata: { labels: { app: orders, version: v1 } }
    spec:
      serviceAccountName: orders
      containers:
        - name: app
          image: orders:1
          ports: [{ containerPort: 8080 }]
---
apiVersion: batch/v1
kind: Job
metadata: { name: backfill, namespace: shop }
spec:
  template:
    spec:
      serviceAccountName: batch
      restartPolicy: Never
      containers:
        - name: backfill
          image: backfill:1
`

// What the kubelet would put in each fieldRef of the injected env.
const FIELDS: Record<string, string> = {
  'metadata.name': 'orders-7d4f-x2',
  'metadata.namespace': 'shop',
  'status.podIP': '10.244.1.7',
  'spec.serviceAccountName': 'orders',
}

/** The kubelet's $(VAR) expansion of args from the container's env ($$ escapes a literal $). */
function expand(args: string[], env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]): string[] {
  const vars = new Map(env.map((e) => [e.name, e.value ?? FIELDS[e.valueFrom?.fieldRef?.fieldPath ?? ''] ?? '']))
  return args.map((a) => a.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : (vars.get(name!) ?? m))))
}

let dir: string
let docs: any[]
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-inject-args-'))
  await writeFile(join(dir, 'workloads.yaml'), WORKLOADS)
  const c = runRemora(['inject', '-f', join(dir, 'workloads.yaml')])
  const code = await c.exited
  expect(c.stderr).not.toMatch(/error/i)
  expect(code).toBe(0)
  docs = parseAllDocuments(c.stdout).map((d) => d.toJS())
}, 60_000)
afterAll(async () => {
  if (dir) await rmDir(dir)
})

function proxyContainer(doc: any): { args: string[]; env: any[] } {
  const spec = doc.spec.template.spec
  const c = [...(spec.initContainers ?? []), ...spec.containers].find((x: any) => x.name === 'remora-proxy')
  expect(c.args[0]).toBe('proxy')
  return { args: expand(c.args.slice(1), c.env), env: c.env }
}

describe('the injected sidecar args parse as remora proxy would read them', () => {
  test('Deployment: control plane addresses as a list, identity from the pod, inbound to the app port', async () => {
    const { args } = proxyContainer(docs[0])
    const parsed = parseProxyArgs(args)
    const { config } = await loadSidecarConfig(parsed.file, parsed.overrides)
    expect(config.controlPlane?.addresses).toEqual(['remora-control-plane.remora-system.svc:15010'])
    expect(config.controlPlane?.tokenFile).toBe('/var/run/secrets/remora/tokens/remora-token')
    expect(config.workload).toMatchObject({ namespace: 'shop', serviceAccount: 'orders', labels: { app: 'orders', version: 'v1' } })
    expect(config.inbound.app).toBe('127.0.0.1:8080')
  })

  test('Job (no container port): the config loads without an inbound app', async () => {
    const { args } = proxyContainer(docs[1])
    const parsed = parseProxyArgs(args)
    const { config } = await loadSidecarConfig(parsed.file, parsed.overrides)
    expect(config.controlPlane?.addresses).toEqual(['remora-control-plane.remora-system.svc:15010'])
    expect(config.inbound.app).toBeUndefined()
  })
})

describe('a sidecar without inbound.app (a Job)', () => {
  let app: Upstream
  const sidecars: TestSidecar[] = []
  afterAll(async () => {
    for (const s of sidecars) await s.close()
    await app?.close()
  })

  test('refuses every inbound connection, and the log says there is no app port; with one, the same caller is served', async () => {
    const pki = await createTestPki()
    app = await startUpstream()
    const caller = await pki.issue('spiffe://cluster.local/ns/shop/sa/frontend')
    const job = await startSidecar({ pki, serviceAccount: 'backfill', app: 'unused:1', extra: { inbound: { port: 0, bind: '127.0.0.1' } } })
    sidecars.push(job)
    expect(job.sidecar.config.inbound.app).toBeUndefined()
    const r = await mtlsRequest(job.inbound, caller, pki.caPem, { path: '/' })
    expect(r.refused).toBe(true)
    const line = job.logger.lines.find((l) => (l.obj as { event?: string }).event === 'inbound_connection_refused')
    expect((line?.obj as { reason?: string } | undefined)?.reason).toMatch(/declares no inbound port \(inbound\.app is not set\)/)

    const served = await startSidecar({ pki, serviceAccount: 'orders', app: app.address })
    sidecars.push(served)
    const ok = await mtlsRequest(served.inbound, caller, pki.caPem, { path: '/' })
    expect(ok.refused).toBe(false)
    expect(app.hits).toBe(1)
  })
})
