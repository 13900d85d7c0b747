// The sidecar container `remora inject` writes must start: its args, after the kubelet expands
// $(VAR) from the container's env, go through `remora proxy`'s own parseProxyArgs and
// loadSidecarConfig without an error, for a Deployment (app port), a Job (no port) and a
// StatefulSet serving gRPC, Postgres and HTTP beside its Service. A sidecar without an app port
// refuses inbound connections and says why. `--legacy-sidecar` writes the legacy form.
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
---
apiVersion: v1
kind: Service
metadata: { name: ledger, namespace: shop }
spec:
  selector: { app: ledger }
  ports:
    - { name: api, port: 9090, targetPort: grpc, appProtocol: grpc }
    - { name: tcp-postgres, port: 5432, targetPort: 5432 }
    - { name: http, port: 80, targetPort: 8080 }
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: ledger, namespace: shop }
spec:
  serviceName: ledger
  selector: { matchLabels: { app: ledger } }
  template:
    metadata:
      labels: { app: ledger }
      annotations: { remora.dev/exclude-inbound-ports: "9100", remora.dev/exclude-outbound-cidrs: "169.254.169.254,fd00:ec2::254" }
    spec:
      serviceAccountName: ledger
      containers:
        - name: ledger
          image: ledger:3
          ports:
            - { name: grpc, containerPort: 9091 }
            - { name: db, containerPort: 5432 }
            - { name: web, containerPort: 8080 }
            - { name: metrics, containerPort: 9100 }
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
let legacyDocs: any[]

async function inject(...flags: string[]): Promise<any[]> {
  const c = runRemora(['inject', '-f', join(dir, 'workloads.yaml'), ...flags])
  const code = await c.exited
  expect(c.stderr).not.toMatch(/error/i)
  expect(code).toBe(0)
  return parseAllDocuments(c.stdout).map((d) => d.toJS())
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-inject-args-'))
  await writeFile(join(dir, 'workloads.yaml'), WORKLOADS)
  ;[docs, legacyDocs] = await Promise.all([inject(), inject('--legacy-sidecar')])
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

  test('StatefulSet with gRPC, Postgres and HTTP ports: accepted, every port intercepted, the gRPC port (first HTTP-family) the default app port, protocols from the Service', async () => {
    const { args } = proxyContainer(docs[3])
    const parsed = parseProxyArgs(args)
    const { config } = await loadSidecarConfig(parsed.file, parsed.overrides)
    expect(config.inbound.app).toBe('127.0.0.1:9091')
    const spec = docs[3].spec.template.spec
    expect(spec.initContainers[0].args).toEqual([
      'init-iptables',
      '--proxy-uid',
      '1337',
      '--inbound-ports',
      '*',
      '--exclude-inbound-ports',
      '9100',
      '--exclude-outbound-cidrs',
      '169.254.169.254/32,fd00:ec2::254/128',
    ])
    expect(JSON.parse(docs[3].spec.template.metadata.annotations['remora.dev/status']).ports).toEqual([
      { port: 9091, protocol: 'grpc' },
      { port: 5432, protocol: 'tcp' },
      { port: 8080, protocol: 'http' },
    ])
  })

  test('the init container\'s args are what remora init-iptables takes: every inbound port but the excluded and the sidecar\'s own, IPv4 and IPv6', async () => {
    const args = docs[3].spec.template.spec.initContainers[0].args as string[]
    const c = runRemora([...args, '--dry-run'])
    expect(await c.exited).toBe(0)
    const [v4, v6] = c.stdout.split(/^# ip6tables-restore.*$/m)
    for (const rules of [v4!, v6!]) {
      expect(rules).toMatch(/-A REMORA_INBOUND -p tcp --dport 9100 -j RETURN/)
      expect(rules).toMatch(/-A REMORA_INBOUND -p tcp --dport 15006 -j RETURN/)
      expect(rules).toMatch(/-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT/)
      expect(rules).not.toMatch(/--dport (9091|5432|8080) /)
    }
    expect(v4).toMatch(/-d 169\.254\.169\.254\/32 -j RETURN/)
    expect(v6).toMatch(/-d fd00:ec2::254\/128 -j RETURN/)
  })

  test('native by default (init container after remora-init, restartPolicy Always); --legacy-sidecar writes the first container instead, whose args parse the same', async () => {
    const native = docs[0].spec.template.spec
    expect(native.initContainers.map((c: any) => c.name)).toEqual(['remora-init', 'remora-proxy'])
    expect(native.initContainers[1].restartPolicy).toBe('Always')
    const legacy = legacyDocs[0].spec.template.spec
    expect(legacy.initContainers.map((c: any) => c.name)).toEqual(['remora-init'])
    expect(legacy.containers.map((c: any) => c.name)).toEqual(['remora-proxy', 'app'])
    expect(legacy.containers[0].restartPolicy).toBeUndefined()
    expect(legacy.containers[0].lifecycle.postStart.exec.command[0]).toBe('node')
    const { args } = proxyContainer(legacyDocs[0])
    expect(args).toEqual(proxyContainer(docs[0]).args)
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
