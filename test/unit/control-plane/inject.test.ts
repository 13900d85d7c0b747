/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects of any shape, read as JSON in tests */
import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseAllDocuments } from 'yaml'
import { afterEach, describe, expect, test } from 'vitest'
import { createInjectConfig, injectManifests, injectPod, readyScript, type PodLike } from '../../../control-plane/inject/index.js'
import { expectInjectedPod } from '../../helpers/inject.js'

const cfg = createInjectConfig({})

function pod(over: { annotations?: Record<string, string>; ports?: object[]; containers?: object[]; initContainers?: object[]; [k: string]: unknown } = {}): PodLike {
  const { annotations, ports, containers, initContainers, ...specExtra } = over
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'frontend', namespace: 'shop', labels: { app: 'frontend' }, ...(annotations ? { annotations } : {}) },
    spec: {
      serviceAccountName: 'frontend',
      containers: containers ?? [{ name: 'app', image: 'shop/frontend:1.2', ports: ports ?? [{ name: 'http', containerPort: 8080 }] }],
      ...(initContainers ? { initContainers } : {}),
      ...specExtra,
    },
  } as PodLike
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('injectPod', () => {
  test('a one-container pod gets the interception init container, the native sidecar and the projected token', () => {
    const r = injectPod(pod(), cfg)
    expect(r.injected).toBe(true)
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'] })
    const proxy = r.pod.spec!.initContainers![1] as Record<string, any>
    expect(proxy.args).toEqual(
      expect.arrayContaining(['--control-plane', 'remora-control-plane.remora-system.svc:15010', 'controlPlane.service=frontend', '--label', 'app=frontend', '--namespace', '$(REMORA_POD_NAMESPACE)']),
    )
    expect(r.pod.metadata!.annotations!['kubectl.kubernetes.io/default-container']).toBe('app')
  })

  test('the input is never modified', () => {
    const p = pod()
    const before = structuredClone(p)
    injectPod(p, cfg)
    expect(p).toEqual(before)
  })

  test('injecting twice changes nothing', () => {
    const once = injectPod(pod(), cfg)
    const twice = injectPod(once.pod, cfg)
    expect(twice).toMatchObject({ injected: false, reason: 'already injected' })
    expect(twice.pod).toEqual(once.pod)
  })

  test('remora.dev/inject: "false" opts out; "true" injects; anything else is refused', () => {
    const out = injectPod(pod({ annotations: { 'remora.dev/inject': 'false' } }), cfg)
    expect(out).toMatchObject({ injected: false, reason: expect.stringMatching(/opted out/) })
    expect(out.pod).toEqual(pod({ annotations: { 'remora.dev/inject': 'false' } }))
    expect(injectPod(pod({ annotations: { 'remora.dev/inject': 'true' } }), cfg).injected).toBe(true)
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/inject': 'no' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
  })

  test('excluded ports and CIDRs reach the interception rules; an excluded inbound port is not the app port', () => {
    const r = injectPod(
      pod({
        ports: [{ name: 'http', containerPort: 8080 }, { name: 'metrics', containerPort: 9090 }],
        annotations: {
          'remora.dev/exclude-inbound-ports': '9090',
          'remora.dev/exclude-outbound-ports': '5432, 6379',
          'remora.dev/exclude-outbound-cidrs': '10.96.0.0/12,169.254.169.254',
        },
      }),
      cfg,
    )
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'], excludeOutboundPorts: '5432,6379', excludeOutboundCidrs: '10.96.0.0/12,169.254.169.254/32' })
  })

  test('bad exclusion annotations are refused with the annotation named', () => {
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-ports': '70000' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-cidrs': '10.0.0.0/33' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-cidrs': 'example.com' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
  })

  test('several TCP ports without a choice are refused (a second port would silently reach the app port); remora.dev/app-port + exclusions resolve it', () => {
    const two = [{ name: 'http', containerPort: 8080 }, { name: 'admin', containerPort: 8081 }]
    expect(codeOf(() => injectPod(pod({ ports: two }), cfg))).toBe('REMORA_ERR_INJECT_APP_PORT')
    expect(codeOf(() => injectPod(pod({ ports: two, annotations: { 'remora.dev/app-port': '8080' } }), cfg))).toBe('REMORA_ERR_INJECT_APP_PORT')
    const ok = injectPod(pod({ ports: two, annotations: { 'remora.dev/app-port': '8081', 'remora.dev/exclude-inbound-ports': '8080' } }), cfg)
    expectInjectedPod(ok.pod, { appPort: 8081, appContainers: ['app'] })
  })

  test('a non-HTTP app port is refused clearly; an HTTP appProtocol or an excluded port is fine', () => {
    expect(codeOf(() => injectPod(pod({ ports: [{ name: 'tcp-db', containerPort: 5432 }] }), cfg))).toBe('REMORA_ERR_INJECT_NON_HTTP_PORT')
    expect(codeOf(() => injectPod(pod({ ports: [{ name: 'db', containerPort: 5432, appProtocol: 'postgresql' }] }), cfg))).toBe('REMORA_ERR_INJECT_NON_HTTP_PORT')
    expect(injectPod(pod({ ports: [{ name: 'web', containerPort: 8080, appProtocol: 'http' }] }), cfg).injected).toBe(true)
    const excluded = injectPod(pod({ ports: [{ name: 'tcp-db', containerPort: 5432 }], annotations: { 'remora.dev/exclude-inbound-ports': '5432' } }), cfg)
    expectInjectedPod(excluded.pod, { appPort: null, appContainers: ['app'] })
  })

  test("a pod that declares a sidecar's port is refused", () => {
    expect(codeOf(() => injectPod(pod({ ports: [{ containerPort: 15001 }] }), cfg))).toBe('REMORA_ERR_INJECT_APP_PORT')
  })

  test('existing native sidecars and init containers stay, after ours', () => {
    const r = injectPod(pod({ initContainers: [{ name: 'migrate', image: 'm' }, { name: 'log-shipper', image: 'l', restartPolicy: 'Always' }] }), cfg)
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'], appInitContainers: ['migrate', 'log-shipper'] })
  })

  test('nativeSidecar: false puts the sidecar first in containers with a postStart hook that holds the app, and warns about init containers', () => {
    const r = injectPod(pod({ initContainers: [{ name: 'migrate', image: 'm' }] }), createInjectConfig({ nativeSidecar: false }))
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'], appInitContainers: ['migrate'], native: false })
    expect(r.warnings.join('\n')).toMatch(/migrate.*intercepted/)
  })

  test('hostNetwork pods are never injected (the rules would land in the node)', () => {
    expect(injectPod(pod({ hostNetwork: true }), cfg)).toMatchObject({ injected: false, reason: expect.stringMatching(/hostNetwork/) })
  })

  test('an httpGet probe on the app port is warned about (STRICT would refuse the kubelet)', () => {
    const r = injectPod(
      pod({ containers: [{ name: 'app', image: 'a', ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/healthz', port: 'http' } } }] }),
      cfg,
    )
    expect(r.warnings.join('\n')).toMatch(/readinessProbe.*STRICT/)
  })

  test('a "$" in a label cannot be read by the kubelet as a variable reference', () => {
    const p = pod()
    p.metadata!.labels = { app: 'frontend', note: 'a$(HOME)' }
    const args = (injectPod(p, cfg).pod.spec!.initContainers![1] as { args: string[] }).args
    expect(args).toContain('note=a$$(HOME)')
  })

  test('the config is validated once, with the field named', () => {
    expect(codeOf(() => createInjectConfig({ imagePullPolicy: 'Sometimes' }))).toBe('REMORA_ERR_INJECT_CONFIG')
    expect(codeOf(() => createInjectConfig({ images: 'x' }))).toBe('REMORA_ERR_INJECT_CONFIG')
  })
})

describe('the readiness script the probes and the postStart hook run', () => {
  const servers: http.Server[] = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
  })

  function run(script: string): Promise<number> {
    return new Promise((resolve) => spawn(process.execPath, ['-e', script], { stdio: 'ignore' }).on('exit', (code) => resolve(code ?? -1)))
  }

  test('exits 0 once /ready answers 200 (after 503s), and 1 when nothing is ready before the deadline', async () => {
    let calls = 0
    const s = http.createServer((req, res) => {
      calls++
      res.writeHead(req.url === '/ready' && calls >= 3 ? 200 : 503).end()
    })
    servers.push(s)
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    const port = (s.address() as AddressInfo).port
    expect(await run(readyScript(10_000).replace(':15000', `:${port}`).replace('port:15000', `port:${port}`))).toBe(0)
    expect(calls).toBe(3)
    const closed = http.createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const deadPort = (closed.address() as AddressInfo).port
    await new Promise((r) => closed.close(r))
    expect(await run(readyScript(500).replace('port:15000', `port:${deadPort}`))).toBe(1)
  })
})

// One manifest per kind with a pod template, plus objects that must pass through untouched.
const WORKLOADS = `
apiVersion: apps/v1
kind: Deployment
metadata: { name: frontend, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: frontend } }
  template:
    metadata: { labels: { app: frontend } }
    spec:
      serviceAccountName: frontend
      containers:
        - name: app
          image: shop/frontend:1.2
          ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: frontend, namespace: shop }
spec:
  selector: { app: frontend }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: ledger, namespace: shop }
spec:
  serviceName: ledger
  selector: { matchLabels: { app: ledger } }
  template:
    metadata: { labels: { app: ledger } }
    spec:
      containers:
        - name: ledger
          image: shop/ledger:3
          ports: [{ containerPort: 9000 }]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: node-agent, namespace: shop }
spec:
  selector: { matchLabels: { app: node-agent } }
  template:
    metadata: { labels: { app: node-agent } }
    spec:
      containers:
        - name: agent
          image: shop/agent:1
          ports: [{ name: http, containerPort: 7070 }]
---
apiVersion: batch/v1
kind: Job
metadata: { name: backfill, namespace: shop }
spec:
  template:
    metadata:
      annotations: { remora.dev/exclude-outbound-ports: "5432" }
    spec:
      restartPolicy: Never
      containers:
        - name: backfill
          image: shop/backfill:1
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: nightly, namespace: shop }
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: shop/report:1
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: shop }
data: { a: "1" }
`

const templateOf = (doc: Record<string, any>): PodLike =>
  doc.kind === 'CronJob' ? doc.spec.jobTemplate.spec.template : doc.kind === 'Pod' ? doc : doc.spec.template

describe('remora inject -f (injectManifests)', () => {
  test('Deployment, StatefulSet, DaemonSet, Job and CronJob in one multi-document file are injected; other kinds pass through unchanged', () => {
    const r = injectManifests(WORKLOADS, cfg)
    const docs = parseAllDocuments(r.text).map((d) => d.toJS() as Record<string, any>)
    const input = parseAllDocuments(WORKLOADS).map((d) => d.toJS() as Record<string, any>)
    expect(docs.map((d) => d.kind)).toEqual(['Deployment', 'Service', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ConfigMap'])
    expectInjectedPod(templateOf(docs[0]!), { appPort: 8080, appContainers: ['app'] })
    expect(docs[1]).toEqual(input[1])
    expectInjectedPod(templateOf(docs[2]!), { appPort: 9000, appContainers: ['ledger'] })
    expectInjectedPod(templateOf(docs[3]!), { appPort: 7070, appContainers: ['agent'] })
    expectInjectedPod(templateOf(docs[4]!), { appPort: null, appContainers: ['backfill'], excludeOutboundPorts: '5432' })
    expectInjectedPod(templateOf(docs[5]!), { appPort: null, appContainers: ['report'] })
    expect(docs[6]).toEqual(input[6])
    // Everything outside the pod template is untouched.
    expect({ ...docs[0], spec: { ...docs[0]!.spec, template: null } }).toEqual({ ...input[0], spec: { ...input[0]!.spec, template: null } })
    expect(r.reports.map((x) => x.result)).toEqual(['injected', 'no pod template, unchanged', 'injected', 'injected', 'injected', 'injected', 'no pod template, unchanged'])
  })

  test('the service name comes from the app label, else the workload name', () => {
    const docs = parseAllDocuments(injectManifests(WORKLOADS, cfg).text).map((d) => d.toJS() as Record<string, any>)
    const service = (d: Record<string, any>) => {
      const args: string[] = templateOf(d).spec!.initContainers![1]!.args as string[]
      return args.find((a) => a.startsWith('controlPlane.service='))?.slice(21)
    }
    expect(service(docs[0]!)).toBe('frontend')
    expect(service(docs[4]!)).toBe('backfill')
  })

  test('injecting the output again gives the same text (idempotent)', () => {
    const once = injectManifests(WORKLOADS, cfg)
    const twice = injectManifests(once.text, cfg)
    expect(twice.text).toBe(once.text)
    expect(twice.reports.filter((x) => x.result === 'injected')).toEqual([])
  })

  test('a bare Pod and a List are injected; an error names the workload', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [pod()] }
    const r = injectManifests(JSON.stringify(list), cfg)
    const out = parseAllDocuments(r.text)[0]!.toJS() as { items: PodLike[] }
    expectInjectedPod(out.items[0]!, { appPort: 8080, appContainers: ['app'] })
    const bad = WORKLOADS.replace('ports: [{ containerPort: 9000 }]', 'ports: [{ containerPort: 9000 }, { containerPort: 9001 }]')
    let err: { code?: string; message?: string } = {}
    try {
      injectManifests(bad, cfg)
    } catch (e) {
      err = e as typeof err
    }
    expect(err.code).toBe('REMORA_ERR_INJECT_APP_PORT')
    expect(err.message).toMatch(/^StatefulSet ledger: /)
  })
})
