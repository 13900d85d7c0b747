/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects of any shape, read as JSON in tests */
// manifests/: the kustomize base renders (with our resolver over the real files; the system test
// compares it with `kubectl kustomize`), every object has a sound shape, the CRD schemas are
// structural and agree with the policy validator field by field, RBAC is least privilege, and the
// control-plane Deployment's security context is what docs/kubernetes.md promises.
import { describe, expect, test } from 'vitest'
import { validate } from '../../proxy/policy/index.js'
import { authzCases } from '../cases/authz.js'
import { CLUSTER_SCOPED, kustomizeBuild, repoDir, type K8sObject } from '../helpers/kustomize.js'
import { structuralProblems, validateValue, type Schema } from '../helpers/openapi.js'

const base = kustomizeBuild(repoDir('manifests', 'base'))
const examples = kustomizeBuild(repoDir('manifests', 'examples'))
const find = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name)
  if (!o) throw new Error(`${kind} ${name} is not rendered`)
  return o
}
const crds = base.filter((o) => o.kind === 'CustomResourceDefinition')
const schemaFor = (kind: string): Schema => {
  const crd = crds.find((c) => c.spec.names.kind === kind)!
  return crd.spec.versions.find((v: { name: string }) => v.name === 'v1').schema.openAPIV3Schema as Schema
}
/** What the API server would say about a policy object of this kind (its own group or Istio's). */
const crdErrors = (doc: Record<string, any>): string[] => validateValue(schemaFor(doc.kind), doc)

describe('manifests/base renders', () => {
  test('the namespace, the three CRDs, RBAC, the control plane, the injector and the webhook', () => {
    expect(base.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ClusterRole/remora-control-plane',
        'ClusterRoleBinding/remora-control-plane',
        'ConfigMap/remora-injector',
        'CustomResourceDefinition/authorizationpolicies.security.remora.dev',
        'CustomResourceDefinition/peerauthentications.security.remora.dev',
        'CustomResourceDefinition/requestauthentications.security.remora.dev',
        'Deployment/remora-control-plane',
        'Deployment/remora-injector',
        'MutatingWebhookConfiguration/remora-sidecar-injector',
        'Namespace/remora-system',
        'Service/remora-control-plane',
        'Service/remora-etcd',
        'Service/remora-injector',
        'ServiceAccount/remora-control-plane',
        'ServiceAccount/remora-injector',
        'StatefulSet/remora-etcd',
      ].sort(),
    )
  })

  test('every object has apiVersion, kind, a DNS name, the namespace when namespaced, and the part-of label', () => {
    for (const o of [...base, ...examples]) {
      expect(o.apiVersion, `${o.kind}`).toMatch(/^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/)
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
      if (CLUSTER_SCOPED.has(o.kind)) expect(o.metadata.namespace).toBeUndefined()
      else expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(base.includes(o) ? 'remora-system' : 'shop')
    }
    for (const o of base) expect(o.metadata.labels?.['app.kubernetes.io/part-of']).toBe('remora')
    const ids = [...base, ...examples].map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`)
    expect(new Set(ids).size).toBe(ids.length)
  })

  test('workloads: selectors match their pod labels, Services select a workload and target a named port, images are pinned', () => {
    for (const objs of [base, examples]) {
      const workloads = objs.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind))
      for (const w of workloads) {
        expect(w.spec.template.metadata.labels).toMatchObject(w.spec.selector.matchLabels)
        for (const c of w.spec.template.spec.containers) expect(c.image, `${w.metadata.name}/${c.name}`).toMatch(/:[\w.-]+$/)
      }
      for (const s of objs.filter((o) => o.kind === 'Service')) {
        const w = workloads.find((x) => Object.entries(s.spec.selector).every(([k, v]) => x.spec.template.metadata.labels[k] === v))
        expect(w, `Service ${s.metadata.name} selects nothing`).toBeDefined()
        const ports = w!.spec.template.spec.containers.flatMap((c: { ports?: { name?: string; containerPort: number }[] }) => c.ports ?? [])
        for (const p of s.spec.ports) {
          const target = p.targetPort ?? p.port
          expect(ports.some((cp: { name?: string; containerPort: number }) => cp.name === target || cp.containerPort === target), `Service ${s.metadata.name} port ${p.name}`).toBe(true)
        }
      }
    }
    expect(find(base, 'Deployment', 'remora-control-plane').spec.template.spec.containers[0].image).toBe('remora:0.1.0')
  })

  test('the control plane: 2 replicas, probes on its health endpoint, non-root, read-only root, no privilege escalation, nothing added', () => {
    const d = find(base, 'Deployment', 'remora-control-plane')
    expect(d.spec.replicas).toBe(2)
    const pod = d.spec.template.spec
    expect(pod.serviceAccountName).toBe('remora-control-plane')
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1337, seccompProfile: { type: 'RuntimeDefault' } })
    const c = pod.containers[0]
    expect(c.securityContext).toEqual({ runAsNonRoot: true, allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } })
    for (const probe of [c.readinessProbe, c.livenessProbe]) expect(probe.httpGet).toEqual({ path: '/healthz', port: 'https', scheme: 'HTTPS' })
    expect(c.ports).toContainEqual({ name: 'https', containerPort: 15010 })
    expect(c.args).toEqual(expect.arrayContaining(['control-plane', '--source=kubernetes', '--listen=0.0.0.0:15010']))
    expect(c.args.find((a: string) => a.startsWith('--store='))).toMatch(/^--store=etcd:\/\//)
    expect(c.resources.limits).toBeDefined()
    // Writable paths are emptyDirs: the root filesystem stays read-only.
    expect(c.volumeMounts.map((m: { mountPath: string }) => m.mountPath).sort()).toEqual(['/tmp', '/var/run/remora'])
    expect(find(base, 'Service', 'remora-control-plane').spec.ports[0]).toMatchObject({ port: 15010, targetPort: 'https' })
    // The mesh's own pods are never injected.
    expect(d.spec.template.metadata.annotations['remora.dev/inject']).toBe('false')
  })

  test('the injector runs with the same hardening and no API access at all', () => {
    const d = find(base, 'Deployment', 'remora-injector')
    expect(d.spec.replicas).toBe(2)
    const pod = d.spec.template.spec
    expect(pod.automountServiceAccountToken).toBe(false)
    expect(pod.containers[0].securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } })
    expect(base.filter((o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && o.subjects.some((s: { name: string }) => s.name === 'remora-injector'))).toEqual([])
  })

  test('the webhook: pods CREATE only, v1 reviews, no side effects, fails closed, only labelled namespaces and never the system ones, pointed at the injector Service', () => {
    const w = find(base, 'MutatingWebhookConfiguration', 'remora-sidecar-injector').webhooks[0]
    expect(w).toMatchObject({ admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail' })
    expect(w.rules).toEqual([{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }])
    expect(w.namespaceSelector.matchExpressions).toContainEqual({ key: 'remora-injection', operator: 'In', values: ['enabled'] })
    expect(w.namespaceSelector.matchExpressions).toContainEqual({ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'remora-system'] })
    const svc = find(base, 'Service', w.clientConfig.service.name)
    expect(w.clientConfig.service).toMatchObject({ namespace: 'remora-system', path: '/inject', port: svc.spec.ports[0].port })
    const injector = find(base, 'Deployment', 'remora-injector').spec.template.spec.containers[0]
    expect(injector.args).toContain('--listen=0.0.0.0:15017')
    expect(injector.ports).toContainEqual({ name: 'https', containerPort: 15017 })
  })

  test('RBAC is least privilege: no wildcards, no secrets, writes only where the control plane must write', () => {
    const role = find(base, 'ClusterRole', 'remora-control-plane')
    const writes = new Set(['create', 'update', 'patch', 'delete', 'deletecollection'])
    const granted: string[] = []
    for (const r of role.rules) {
      for (const list of [r.apiGroups, r.resources, r.verbs]) expect(list).not.toContain('*')
      expect(r.resources).not.toContain('secrets')
      for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) if (writes.has(v)) granted.push(`${g || 'core'}/${res}:${v}`)
    }
    expect(granted.sort()).toEqual(
      [
        'authentication.k8s.io/tokenreviews:create',
        'core/configmaps:create',
        'core/configmaps:patch',
        'core/configmaps:update',
        'security.remora.dev/authorizationpolicies/status:patch',
        'security.remora.dev/authorizationpolicies/status:update',
        'security.remora.dev/peerauthentications/status:patch',
        'security.remora.dev/peerauthentications/status:update',
        'security.remora.dev/requestauthentications/status:patch',
        'security.remora.dev/requestauthentications/status:update',
      ].sort(),
    )
    const binding = find(base, 'ClusterRoleBinding', 'remora-control-plane')
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'remora-control-plane', namespace: 'remora-system' }])
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'remora-control-plane' })
  })
})

describe('the CRDs', () => {
  test('three kinds in security.remora.dev v1: namespaced, structural, with the status subresource and printer columns', () => {
    expect(crds.map((c) => c.spec.names.kind).sort()).toEqual(['AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication'])
    for (const c of crds) {
      expect(c.metadata.name).toBe(`${c.spec.names.plural}.security.remora.dev`)
      expect(c.spec).toMatchObject({ group: 'security.remora.dev', scope: 'Namespaced' })
      expect(c.spec.versions).toHaveLength(1)
      const v = c.spec.versions[0]
      expect(v).toMatchObject({ name: 'v1', served: true, storage: true, subresources: { status: {} } })
      expect(structuralProblems(v.schema.openAPIV3Schema)).toEqual([])
      const cols = v.additionalPrinterColumns.map((col: { name: string; jsonPath: string }) => `${col.name}=${col.jsonPath}`)
      expect(cols).toContain('Validation=.status.validation')
      expect(cols).toContain('Age=.metadata.creationTimestamp')
    }
  })

  test('the structural check itself catches an untyped node and an array without items', () => {
    expect(structuralProblems({ type: 'object', properties: { a: {}, b: { type: 'array' } } })).toEqual([
      'openAPIV3Schema.properties[a]: type is required',
      'openAPIV3Schema.properties[b]: items is required for an array',
    ])
  })

  test('every example policy is accepted by its CRD schema and by the validator', () => {
    const policies = examples.filter((o) => o.apiVersion === 'security.remora.dev/v1')
    expect(policies.length).toBeGreaterThanOrEqual(4)
    for (const p of policies) {
      expect(crdErrors(p), `${p.kind} ${p.metadata.name}`).toEqual([])
      expect(validate(p).errors, `${p.kind} ${p.metadata.name}`).toEqual([])
    }
  })

  test('an unknown field is rejected by the CRD schema (with its path) and by the validator', () => {
    const ap = structuredClone(examples.find((o) => o.kind === 'AuthorizationPolicy')!)
    ap.spec.rules[0].from[0].source.principal = ['typo']
    expect(crdErrors(ap)).toEqual(['spec.rules[0].from[0].source.principal: unknown field "principal"'])
    expect(validate(ap).errors.map((e) => e.code)).toEqual(['REMORA_ERR_POLICY_UNKNOWN_FIELD'])
    const pa = structuredClone(examples.find((o) => o.kind === 'PeerAuthentication')!)
    pa.spec.mtls.mod = 'STRICT'
    expect(crdErrors(pa)).toEqual(['spec.mtls.mod: unknown field "mod"'])
    const top = { ...structuredClone(examples.find((o) => o.kind === 'AuthorizationPolicy')!), extra: 1 }
    expect(crdErrors(top)).toEqual(['extra: unknown field "extra"'])
  })

  test('every valid policy of the authz case table is accepted by the CRD schema', () => {
    const docs = authzCases.flatMap((c) => c.policies)
    expect(docs.length).toBeGreaterThan(100)
    for (const d of docs) {
      if (validate(d).errors.length > 0) continue
      expect(crdErrors(d), JSON.stringify(d)).toEqual([])
    }
  })
})

// Documents that use every field of each kind: the mirror check mutates each of them everywhere.
const KITCHEN_SINK: Record<string, any>[] = [
  {
    apiVersion: 'security.remora.dev/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'all', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'orders' } },
      action: 'ALLOW',
      rules: [
        {
          from: [
            {
              source: {
                principals: ['cluster.local/ns/shop/sa/a'],
                notPrincipals: ['cluster.local/ns/shop/sa/b'],
                requestPrincipals: ['iss/sub'],
                notRequestPrincipals: ['iss/other'],
                namespaces: ['shop'],
                notNamespaces: ['dev'],
                ipBlocks: ['10.0.0.0/8'],
                notIpBlocks: ['10.1.0.0/16'],
                remoteIpBlocks: ['192.168.0.0/16'],
                notRemoteIpBlocks: ['192.168.1.0/24'],
              },
            },
          ],
          to: [{ operation: { hosts: ['orders'], notHosts: ['x'], ports: ['8080'], notPorts: ['9090'], methods: ['GET'], notMethods: ['POST'], paths: ['/a'], notPaths: ['/b'] } }],
          when: [{ key: 'request.headers[x-env]', values: ['prod'], notValues: ['dev'] }],
        },
      ],
    },
  },
  {
    apiVersion: 'security.remora.dev/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'all', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'orders' } },
      jwtRules: [
        {
          issuer: 'https://issuer.example',
          audiences: ['shop'],
          jwksUri: 'https://issuer.example/jwks.json',
          fromHeaders: [{ name: 'x-jwt', prefix: 'Bearer ' }],
          fromParams: ['token'],
          fromCookies: ['session'],
          forwardOriginalToken: true,
          outputPayloadToHeader: 'x-jwt-payload',
          outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }],
          timeout: '5s',
        },
      ],
    },
  },
  {
    apiVersion: 'security.remora.dev/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'all', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'orders' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } },
  },
]

type Mutation = { where: string; doc: Record<string, any> }

/** Every structural mistake we can make in `spec`: an unknown field in each mapping, each list emptied, each scalar of the wrong type. */
function mutations(doc: Record<string, any>): Mutation[] {
  const out: Mutation[] = []
  const walk = (node: any, path: (string | number)[]) => {
    const at = (d: Record<string, any>) => path.reduce((n, k) => n[k], d)
    const where = path.join('.')
    if (Array.isArray(node)) {
      const d = structuredClone(doc)
      const parent = path.slice(0, -1).reduce((n: any, k) => n[k], d)
      parent[path[path.length - 1]!] = []
      out.push({ where: `${where} = []`, doc: d })
      node.forEach((v, i) => walk(v, [...path, i]))
    } else if (node !== null && typeof node === 'object') {
      const d = structuredClone(doc)
      at(d).bogusField = 'x'
      out.push({ where: `${where}.bogusField`, doc: d })
      for (const [k, v] of Object.entries(node)) walk(v, [...path, k])
    } else {
      const d = structuredClone(doc)
      const parent = path.slice(0, -1).reduce((n: any, k) => n[k], d)
      parent[path[path.length - 1]!] = typeof node === 'string' ? 5 : 'yes'
      out.push({ where: `${where} wrong type`, doc: d })
    }
  }
  walk(doc.spec, ['spec'])
  return out
}

describe('the CRD schemas mirror the validator', () => {
  test('the kitchen-sink documents (every field) are valid for both', () => {
    for (const d of KITCHEN_SINK) {
      expect(validate(d).errors, d.kind).toEqual([])
      expect(crdErrors(d), d.kind).toEqual([])
    }
  })

  test('every structural mistake anywhere in spec is refused by both (the API server at apply time, the validator in the control plane)', () => {
    let n = 0
    for (const d of KITCHEN_SINK) {
      for (const m of mutations(d)) {
        // Label values and port-level keys are free-form maps: only the validator checks their content.
        if (/matchLabels\.(app|bogusField)|portLevelMtls\.bogusField/.test(m.where)) continue
        n++
        expect(validate(m.doc).errors.length, `validator accepted ${d.kind} ${m.where}`).toBeGreaterThan(0)
        expect(crdErrors(m.doc).length, `CRD accepted ${d.kind} ${m.where}`).toBeGreaterThan(0)
      }
    }
    expect(n).toBeGreaterThan(75)
  })

  test('what only the validator can judge (principal syntax, CIDRs, path templates) is accepted by the CRD and reported as Invalid status instead', () => {
    const d = structuredClone(KITCHEN_SINK[0]!)
    d.spec.rules[0].from[0].source.ipBlocks = ['10.0.0.0/33']
    expect(crdErrors(d)).toEqual([])
    expect(validate(d).errors.map((e) => e.code)).toEqual(['REMORA_ERR_POLICY_BAD_IP'])
  })
})
