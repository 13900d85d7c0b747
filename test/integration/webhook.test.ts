// The injection webhook as the API server calls it: AdmissionReview v1 JSON over HTTPS to a server
// with its own certificate (minted by our CA for the webhook Service's DNS name), the JSONPatch
// applied with a JSON-Patch library to the pod that was sent, and the result checked.
import https from 'node:https'
import { randomUUID } from 'node:crypto'
import fjp from 'fast-json-patch'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { issueWorkloadCert } from '../../control-plane/ca/index.js'
import { createInjectConfig, injectPod, InjectionWebhook, type PodLike } from '../../control-plane/inject/index.js'
import { expectInjectedPod } from '../helpers/inject.js'
import { createTestPki } from '../helpers/pki.js'

const SERVICE_DNS = 'remora-injector.remora-system.svc'
const silent = { info: () => {}, warn: () => {}, error: () => {} }

let hook: InjectionWebhook
let caPem: string

beforeAll(async () => {
  const pki = await createTestPki()
  const cert = await issueWorkloadCert(pki.ca, { uris: [], dnsNames: [SERVICE_DNS] }, { clock: { now: () => Date.now() } })
  caPem = pki.caPem
  hook = await InjectionWebhook.start({ host: '127.0.0.1', port: 0, certPem: cert.certPem, keyPem: cert.keyPem, config: createInjectConfig({}) }, { logger: silent })
})

afterAll(async () => {
  await hook?.close()
})

/** A pod as the API server sends it for a Deployment's ReplicaSet: no name yet, generateName, owner, defaults filled in. */
function deploymentPod(over: { annotations?: Record<string, string>; ports?: object[]; initContainers?: object[] } = {}): PodLike {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'frontend-7d4b9c8f6d-',
      namespace: 'shop',
      creationTimestamp: null,
      labels: { app: 'frontend', 'pod-template-hash': '7d4b9c8f6d' },
      ...(over.annotations ? { annotations: over.annotations } : {}),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'frontend-7d4b9c8f6d', uid: randomUUID(), controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2024-05-01T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': {} } }],
    },
    spec: {
      volumes: [{ name: 'kube-api-access-x7k2p', projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }], defaultMode: 420 } }],
      ...(over.initContainers ? { initContainers: over.initContainers } : {}),
      containers: [
        {
          name: 'app',
          image: 'shop/frontend:1.2',
          ports: over.ports ?? [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          resources: {},
          volumeMounts: [{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'frontend',
      serviceAccount: 'frontend',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  } as PodLike
}

function admissionReview(object: unknown, kind = { group: '', version: 'v1', kind: 'Pod' }) {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: randomUUID(),
      kind,
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: kind,
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: randomUUID(), groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  }
}

interface Answer {
  status: number
  body: any
}

/** POST over HTTPS, verifying the webhook's certificate for its Service name (as the API server does with caBundle). */
function post(path: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: hook.port, path, method: 'POST', ca: caPem, servername: SERVICE_DNS, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

async function review(pod: unknown) {
  const rev = admissionReview(pod)
  const a = await post('/inject?timeout=10s', JSON.stringify(rev))
  expect(a.status).toBe(200)
  expect(a.body.apiVersion).toBe('admission.k8s.io/v1')
  expect(a.body.kind).toBe('AdmissionReview')
  expect(a.body.response.uid).toBe(rev.request.uid)
  return a.body.response as { allowed: boolean; patchType?: string; patch?: string; warnings?: string[]; status?: { code: number; message: string } }
}

/** Applies the base64 JSONPatch to a copy of the pod, as the API server does (a failing op throws). */
function applied(pod: PodLike, patch: string): PodLike {
  const ops = JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as fjp.Operation[]
  expect(fjp.validate(ops, structuredClone(pod))).toBeUndefined()
  return fjp.applyPatch(structuredClone(pod), ops, true, false).newDocument
}

describe('the injection webhook (AdmissionReview v1 over HTTPS)', () => {
  test('a pod with one container: the patched pod is exactly the injected pod, and the rest of the pod is untouched', async () => {
    const pod = deploymentPod()
    const res = await review(pod)
    expect(res.allowed).toBe(true)
    expect(res.patchType).toBe('JSONPatch')
    const out = applied(pod, res.patch!)
    expectInjectedPod(out, { appPort: 8080, appContainers: ['app'] })
    const expected = injectPod(pod, createInjectConfig({}), { namespace: 'shop', workloadName: 'frontend' })
    expect(out).toEqual(expected.pod)
    expect({ ...out, spec: { ...out.spec, initContainers: undefined, volumes: undefined }, metadata: { ...out.metadata, annotations: undefined } }).toEqual({
      ...pod,
      spec: { ...pod.spec, initContainers: undefined, volumes: undefined },
      metadata: { ...pod.metadata, annotations: undefined },
    })
    // The service name comes from the owner (ReplicaSet name less its pod-template-hash) when no app label says it.
    const args = (out.spec!.initContainers![1] as { args: string[] }).args
    expect(args.find((a) => a.startsWith('controlPlane.service='))?.slice(21)).toBe('frontend')
  })

  test('the service name falls back to the ReplicaSet owner less its pod-template-hash', async () => {
    const pod = deploymentPod()
    delete pod.metadata!.labels!.app
    const out = applied(pod, (await review(pod)).patch!)
    const args = (out.spec!.initContainers![1] as { args: string[] }).args
    expect(args.find((a) => a.startsWith('controlPlane.service='))?.slice(21)).toBe('frontend')
  })

  test('a pod that already has native sidecars keeps them, after ours', async () => {
    const pod = deploymentPod({ initContainers: [{ name: 'vault-agent', image: 'vault:1.15', restartPolicy: 'Always' }] })
    const res = await review(pod)
    expectInjectedPod(applied(pod, res.patch!), { appPort: 8080, appContainers: ['app'], appInitContainers: ['vault-agent'] })
  })

  test('an already injected pod is admitted with no patch (injecting twice changes nothing)', async () => {
    const once = applied(deploymentPod(), (await review(deploymentPod())).patch!)
    const res = await review(once)
    expect(res).toEqual({ uid: expect.any(String), allowed: true })
  })

  test('an opted-out pod (remora.dev/inject: "false") is admitted with no patch', async () => {
    const res = await review(deploymentPod({ annotations: { 'remora.dev/inject': 'false' } }))
    expect(res.allowed).toBe(true)
    expect(res.patch).toBeUndefined()
  })

  test('excluded ports: the metrics port is left to the app, the app port and outbound exclusions reach the rules', async () => {
    const pod = deploymentPod({
      ports: [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
      ],
      annotations: { 'remora.dev/exclude-inbound-ports': '9090', 'remora.dev/exclude-outbound-ports': '5432', 'remora.dev/exclude-outbound-cidrs': '10.96.0.1/32' },
    })
    const out = applied(pod, (await review(pod)).patch!)
    expectInjectedPod(out, { appPort: 8080, appContainers: ['app'], excludeInboundPorts: '9090', excludeOutboundPorts: '5432', excludeOutboundCidrs: '10.96.0.1/32' })
    expect(out.metadata!.annotations!['remora.dev/exclude-inbound-ports']).toBe('9090')
  })

  test('a pod with gRPC, Postgres, HTTP and an undeclared port is injected: every port intercepted, each with the protocol its name declares', async () => {
    const pod = deploymentPod({
      ports: [
        { name: 'grpc-api', containerPort: 9090, protocol: 'TCP' },
        { name: 'tcp-postgres', containerPort: 5432, protocol: 'TCP' },
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { containerPort: 7000, protocol: 'TCP' },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
      ],
    })
    const res = await review(pod)
    expect(res.allowed).toBe(true)
    const out = applied(pod, res.patch!)
    expectInjectedPod(out, { appPort: 9090, appContainers: ['app'] })
    expect(JSON.parse(out.metadata!.annotations!['remora.dev/status']!).ports).toEqual([{ port: 9090, protocol: 'grpc' }, { port: 5432, protocol: 'tcp' }, { port: 8080, protocol: 'http' }, { port: 7000 }])
    expect(out).toEqual(injectPod(pod, createInjectConfig({}), { namespace: 'shop', workloadName: 'frontend' }).pod)
  })

  test('remora.dev/native-sidecar: "false" gets the legacy sidecar: first in containers, held by postStart; the patch applies and a second review changes nothing', async () => {
    const pod = deploymentPod({ annotations: { 'remora.dev/native-sidecar': 'false' }, initContainers: [{ name: 'migrate', image: 'm' }] })
    const res = await review(pod)
    expect(res.allowed).toBe(true)
    const out = applied(pod, res.patch!)
    expectInjectedPod(out, { appPort: 8080, appContainers: ['app'], appInitContainers: ['migrate'], native: false })
    expect(res.warnings!.join('\n')).toMatch(/^remora: init containers migrate run before the sidecar/)
    expect(await review(out)).toEqual({ uid: expect.any(String), allowed: true })
  })

  test('a pod that declares one of the sidecar\'s ports is refused with the reason (400), no patch', async () => {
    const res = await review(deploymentPod({ ports: [{ containerPort: 8080 }, { containerPort: 15006 }] }))
    expect(res.allowed).toBe(false)
    expect(res.patch).toBeUndefined()
    expect(res.status!.code).toBe(400)
    expect(res.status!.message).toMatch(/REMORA_ERR_INJECT_APP_PORT.*15006.*remora\.dev\/exclude-inbound-ports/)
  })

  test('a bad remora.dev/native-sidecar value is refused with the annotation named', async () => {
    const res = await review(deploymentPod({ annotations: { 'remora.dev/native-sidecar': 'off' } }))
    expect(res.allowed).toBe(false)
    expect(res.status!.message).toMatch(/REMORA_ERR_INJECT_BAD_ANNOTATION.*remora\.dev\/native-sidecar/)
  })

  test('an httpGet probe on the app port comes back as an admission warning', async () => {
    const pod = deploymentPod()
    ;(pod.spec!.containers![0] as Record<string, unknown>).readinessProbe = { httpGet: { path: '/ready', port: 8080, scheme: 'HTTP' } }
    const res = await review(pod)
    expect(res.allowed).toBe(true)
    expect(res.warnings!.join('\n')).toMatch(/^remora: app: the readinessProbe/)
  })

  test('anything but a pod CREATE is admitted untouched', async () => {
    const rev = admissionReview({ kind: 'Service', apiVersion: 'v1', metadata: { name: 's' } }, { group: '', version: 'v1', kind: 'Service' })
    const a = await post('/inject', JSON.stringify(rev))
    expect(a.body.response).toEqual({ uid: rev.request.uid, allowed: true })
  })

  test('a body that is not an AdmissionReview v1 is a 400 with a code, not a denial', async () => {
    const v1beta1 = { ...admissionReview(deploymentPod()), apiVersion: 'admission.k8s.io/v1beta1' }
    expect(await post('/inject', JSON.stringify(v1beta1))).toMatchObject({ status: 400, body: { error: { code: 'REMORA_ERR_INJECT_BAD_REVIEW' } } })
    expect(await post('/inject', '{not json')).toMatchObject({ status: 400, body: { error: { code: 'REMORA_ERR_INJECT_BAD_REVIEW' } } })
    expect((await post('/elsewhere', '{}')).status).toBe(404)
  })
})
