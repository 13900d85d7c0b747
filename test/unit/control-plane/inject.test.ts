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
          'remora.dev/exclude-outbound-cidrs': '10.96.0.0/12,169.254.169.254,fd00::/8,2001:db8::1',
        },
      }),
      cfg,
    )
    expectInjectedPod(r.pod, {
      appPort: 8080,
      appContainers: ['app'],
      excludeInboundPorts: '9090',
      excludeOutboundPorts: '5432,6379',
      excludeOutboundCidrs: '10.96.0.0/12,169.254.169.254/32,fd00::/8,2001:db8::1/128',
    })
  })

  test('bad exclusion annotations are refused with the annotation named', () => {
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-ports': '70000' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-cidrs': '10.0.0.0/33' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-cidrs': 'example.com' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-cidrs': 'fd00::/129' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
  })

  test('ipv6: false (nodes without IPv6) writes IPv4 rules only, and an IPv6 exclusion is then refused rather than failing in the init container', () => {
    const v4 = createInjectConfig({ ipv6: false })
    const init = injectPod(pod(), v4).pod.spec!.initContainers![0] as { args: string[] }
    expect(init.args).toEqual(['init-iptables', '--proxy-uid', '1337', '--inbound-ports', '*', '--ipv6=false'])
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/exclude-outbound-cidrs': 'fd00::/8' } }), v4))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
  })

  const statusOf = (p: PodLike) => JSON.parse(p.metadata!.annotations!['remora.dev/status']!) as { ports: { port: number; protocol?: string }[]; appPort: number | null }

  test('several TCP ports: every one is intercepted (the sidecar forwards to the port dialled), the first HTTP one is the default app port', () => {
    const r = injectPod(pod({ ports: [{ name: 'tcp-postgres', containerPort: 5432 }, { name: 'http', containerPort: 8080 }, { name: 'admin', containerPort: 8081 }] }), cfg)
    expect(r.injected).toBe(true)
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'] })
    expect(statusOf(r.pod).ports.map((p) => p.port)).toEqual([5432, 8080, 8081])
  })

  test('remora.dev/app-port picks the default app port among them; an undeclared one is intercepted too; one port only, never an excluded one', () => {
    const two = [{ name: 'http', containerPort: 8080 }, { name: 'admin', containerPort: 8081 }]
    expectInjectedPod(injectPod(pod({ ports: two, annotations: { 'remora.dev/app-port': '8081' } }), cfg).pod, { appPort: 8081, appContainers: ['app'] })
    const undeclared = injectPod(pod({ ports: two, annotations: { 'remora.dev/app-port': '9000' } }), cfg).pod
    expectInjectedPod(undeclared, { appPort: 9000, appContainers: ['app'] })
    expect(statusOf(undeclared).ports.map((p) => p.port)).toEqual([8080, 8081, 9000])
    expect(codeOf(() => injectPod(pod({ ports: two, annotations: { 'remora.dev/app-port': '8080,8081' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
    expect(codeOf(() => injectPod(pod({ ports: two, annotations: { 'remora.dev/app-port': '8081', 'remora.dev/exclude-inbound-ports': '8081' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
  })

  test('non-HTTP ports are injected, not refused: each port keeps its declared protocol (appProtocol, else its name), undeclared ones are detected', () => {
    const r = injectPod(
      pod({
        ports: [
          { name: 'tcp-db', containerPort: 5432 },
          { name: 'api', containerPort: 9090, appProtocol: 'kubernetes.io/h2c' },
          { name: 'grpc-admin', containerPort: 9091 },
          { name: 'metrics', containerPort: 9100 },
          { name: 'dns', containerPort: 53, protocol: 'UDP' },
        ],
      }),
      cfg,
    )
    expectInjectedPod(r.pod, { appPort: 9090, appContainers: ['app'] })
    expect(statusOf(r.pod).ports).toEqual([{ port: 5432, protocol: 'tcp' }, { port: 9090, protocol: 'http2' }, { port: 9091, protocol: 'grpc' }, { port: 9100 }])
  })

  test('a pod that serves only TCP gets it as its default app port; an excluded port is left to the app', () => {
    expectInjectedPod(injectPod(pod({ ports: [{ name: 'db', containerPort: 5432, appProtocol: 'postgresql' }] }), cfg).pod, { appPort: 5432, appContainers: ['app'] })
    // An undeclared server-first port (Postgres' 5432) is not taken for HTTP either.
    const mixed = injectPod(pod({ ports: [{ containerPort: 5432 }, { containerPort: 8080 }] }), cfg)
    expectInjectedPod(mixed.pod, { appPort: 8080, appContainers: ['app'] })
    const excluded = injectPod(pod({ ports: [{ name: 'tcp-db', containerPort: 5432 }], annotations: { 'remora.dev/exclude-inbound-ports': '5432' } }), cfg)
    expectInjectedPod(excluded.pod, { appPort: null, appContainers: ['app'], excludeInboundPorts: '5432' })
    expect(statusOf(excluded.pod).ports).toEqual([])
  })

  test("a Service that selects the pod declares its ports' protocols: its appProtocol (by targetPort number or name) wins over the container port's name", () => {
    const ports = [{ name: 'web', containerPort: 8080 }, { name: 'tcp-stream', containerPort: 7000 }, { name: 'plain', containerPort: 9000 }]
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'frontend', namespace: 'shop' }, spec: { selector: { app: 'frontend' }, ports: [{ name: 'public', port: 80, targetPort: 'web', appProtocol: 'grpc' }, { name: 'stream', port: 7000, targetPort: 7000, appProtocol: 'kubernetes.io/h2c' }, { name: 'https-9000', port: 443, targetPort: 9000 }] } }
    const other = { ...service, spec: { ...service.spec, selector: { app: 'billing' }, ports: [{ port: 8080, targetPort: 8080, appProtocol: 'tcp' }] } }
    const r = injectPod(pod({ ports }), cfg, { services: [other, service] })
    expect(statusOf(r.pod).ports).toEqual([{ port: 8080, protocol: 'grpc' }, { port: 7000, protocol: 'http2' }, { port: 9000, protocol: 'tls' }])
    // Another namespace's Service does not count.
    const elsewhere = injectPod(pod({ ports }), cfg, { services: [{ ...service, metadata: { name: 'frontend', namespace: 'billing' } }] })
    expect(statusOf(elsewhere.pod).ports).toEqual([{ port: 8080 }, { port: 7000, protocol: 'tcp' }, { port: 9000 }])
  })

  test("a pod that declares a sidecar's port is refused; excluded, it is left to the app", () => {
    expect(codeOf(() => injectPod(pod({ ports: [{ containerPort: 15001 }] }), cfg))).toBe('REMORA_ERR_INJECT_APP_PORT')
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/app-port': '15006' } }), cfg))).toBe('REMORA_ERR_INJECT_APP_PORT')
    expectInjectedPod(injectPod(pod({ ports: [{ containerPort: 8080 }, { containerPort: 15090 }], annotations: { 'remora.dev/exclude-inbound-ports': '15090' } }), cfg).pod, { appPort: 8080, appContainers: ['app'], excludeInboundPorts: '15090' })
  })

  test('existing native sidecars and init containers stay, after ours', () => {
    const r = injectPod(pod({ initContainers: [{ name: 'migrate', image: 'm' }, { name: 'log-shipper', image: 'l', restartPolicy: 'Always' }] }), cfg)
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'], appInitContainers: ['migrate', 'log-shipper'] })
  })

  test('native by default: the sidecar is the init container right after remora-init, restartPolicy Always, a startupProbe on /ready that holds the app', () => {
    const r = injectPod(pod(), cfg)
    const init = r.pod.spec!.initContainers! as Record<string, any>[]
    expect(init.map((c) => c.name)).toEqual(['remora-init', 'remora-proxy'])
    expect(init[1]!.restartPolicy).toBe('Always')
    expect(init[1]!.startupProbe.exec.command.join(' ')).toContain("path:'/ready'")
    expect(init[1]!.lifecycle).toBeUndefined()
    expect(r.pod.spec!.containers!.map((c) => c.name)).toEqual(['app'])
  })

  test('the legacy sidecar (nativeSidecar: false) is the first container with a postStart hook that holds the app, and warns about init containers', () => {
    const r = injectPod(pod({ initContainers: [{ name: 'migrate', image: 'm' }] }), createInjectConfig({ nativeSidecar: false }))
    expectInjectedPod(r.pod, { appPort: 8080, appContainers: ['app'], appInitContainers: ['migrate'], native: false })
    expect((r.pod.spec!.containers![0] as Record<string, any>).startupProbe).toBeUndefined()
    expect(r.warnings.join('\n')).toMatch(/migrate.*intercepted/)
  })

  test('remora.dev/native-sidecar on the pod wins over the injector default both ways (Istio\'s sidecar.istio.io/nativeSidecar); anything but "true"/"false" is refused', () => {
    expectInjectedPod(injectPod(pod({ annotations: { 'remora.dev/native-sidecar': 'false' } }), cfg).pod, { appPort: 8080, appContainers: ['app'], native: false })
    expectInjectedPod(injectPod(pod({ annotations: { 'remora.dev/native-sidecar': 'true' } }), createInjectConfig({ nativeSidecar: false })).pod, { appPort: 8080, appContainers: ['app'] })
    expect(codeOf(() => injectPod(pod({ annotations: { 'remora.dev/native-sidecar': 'yes' } }), cfg))).toBe('REMORA_ERR_INJECT_BAD_ANNOTATION')
  })

  test('a legacy-injected pod injected again changes nothing either', () => {
    const legacy = createInjectConfig({ nativeSidecar: false })
    const once = injectPod(pod(), legacy)
    expect(injectPod(once.pod, legacy)).toMatchObject({ injected: false, reason: 'already injected', pod: once.pod })
    expect(injectPod(once.pod, cfg)).toMatchObject({ injected: false, reason: 'already injected', pod: once.pod })
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

  test('probes on any intercepted port are warned about (tcpSocket would always pass); on an excluded port they are not', () => {
    const ports = [{ name: 'http', containerPort: 8080 }, { name: 'tcp-db', containerPort: 5432 }, { name: 'health', containerPort: 8086 }]
    const containers = [{ name: 'app', image: 'a', ports, livenessProbe: { tcpSocket: { port: 'tcp-db' } }, readinessProbe: { grpc: { port: 8086 } } }]
    const r = injectPod(pod({ containers }), cfg)
    expect(r.warnings.join('\n')).toMatch(/livenessProbe \(tcpSocket on port tcp-db\).*accepts whether or not the app is up/)
    expect(r.warnings.join('\n')).toMatch(/readinessProbe \(grpc on port 8086\).*STRICT/)
    expect(injectPod(pod({ containers, annotations: { 'remora.dev/exclude-inbound-ports': '5432,8086' } }), cfg).warnings).toEqual([])
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

  test("a Service in the same file declares the protocols of the ports it selects, and the Service itself passes through unchanged", () => {
    const text = WORKLOADS.replace('ports: [{ port: 80, targetPort: 8080 }]', 'ports: [{ name: api, port: 80, targetPort: http, appProtocol: grpc }]')
    const docs = parseAllDocuments(injectManifests(text, cfg).text).map((d) => d.toJS() as Record<string, any>)
    const status = JSON.parse(templateOf(docs[0]!).metadata!.annotations!['remora.dev/status']!)
    expect(status.ports).toEqual([{ port: 8080, protocol: 'grpc' }])
    // The StatefulSet (app: ledger) is not selected: its port stays undeclared.
    expect(JSON.parse(templateOf(docs[2]!).metadata!.annotations!['remora.dev/status']!).ports).toEqual([{ port: 9000 }])
    expect(docs[1]).toEqual(parseAllDocuments(text)[1]!.toJS())
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
    const bad = WORKLOADS.replace('ports: [{ containerPort: 9000 }]', 'ports: [{ containerPort: 9000 }, { containerPort: 15006 }]')
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
