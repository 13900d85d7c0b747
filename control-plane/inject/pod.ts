import { isIP } from 'node:net'
import { SERVER_FIRST_PORTS, declaredProtocol, type PortProtocol } from '../../proxy/snapshot/index.js'
import {
  ANNOTATIONS,
  INIT_CONTAINER,
  PROXY_PORTS,
  PROXY_UID,
  SIDECAR_CONTAINER,
  STATE_DIR,
  STATE_VOLUME,
  TOKEN_DIR,
  CA_FILE,
  TOKEN_FILE,
  TOKEN_VOLUME,
  type InjectConfig,
} from './config.js'
import { InjectError } from './errors.js'

// injectPod(): a pod (or a workload's pod template, the same shape) → the same pod with the
// sidecar, the interception init container and the projected token. Pure: a new object is
// returned, the input is never changed; the same input and config always give the same output.
// Every TCP port crosses the mesh: inbound is intercepted on all the pod's ports but the excluded
// ones, and the sidecar forwards each connection to the port the caller dialled.

/** The parts of a Pod/PodTemplateSpec injection reads; everything else is carried over untouched. */
export interface PodLike {
  metadata?: { name?: string; generateName?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown }
  spec?: PodSpecLike
  [k: string]: unknown
}

export interface PodSpecLike {
  containers?: ContainerLike[]
  initContainers?: ContainerLike[]
  volumes?: Record<string, unknown>[]
  serviceAccountName?: string
  hostNetwork?: boolean
  [k: string]: unknown
}

export interface ContainerLike {
  name?: string
  ports?: { name?: string; containerPort?: number; protocol?: string; appProtocol?: string }[]
  restartPolicy?: string
  [k: string]: unknown
}

/** The parts of a Service injection reads: which pods it selects, and its ports' declared protocols. */
export interface ServiceLike {
  metadata?: { name?: string; namespace?: string; [k: string]: unknown }
  spec?: {
    selector?: Record<string, string>
    ports?: { name?: string; port?: number; targetPort?: number | string; protocol?: string; appProtocol?: string }[]
    [k: string]: unknown
  }
  [k: string]: unknown
}

export interface InjectContext {
  /** The pod's namespace when metadata has none (AdmissionRequest.namespace). */
  readonly namespace?: string
  /** The owning workload's name (Deployment, Job…): the default service name. */
  readonly workloadName?: string
  /** Services known beside the pod (`remora inject -f`: those in the same manifests); the ones that select it declare its ports' protocols. */
  readonly services?: readonly ServiceLike[]
}

/** One TCP port the pod serves, and its declared protocol (absent: detected by the sidecar). */
export interface PodPort {
  readonly port: number
  readonly container: string
  readonly name?: string
  readonly protocol?: PortProtocol
}

export type InjectOutcome =
  | { readonly injected: true; readonly pod: PodLike; readonly warnings: readonly string[] }
  | { readonly injected: false; readonly pod: PodLike; readonly reason: string; readonly warnings: readonly string[] }

/** What the status annotation records: the names injection added, and what it made of the pod's ports. */
export interface InjectionStatus {
  readonly version: 1
  readonly initContainers: readonly string[]
  readonly containers: readonly string[]
  readonly volumes: readonly string[]
  /** A native sidecar (an init container with restartPolicy: Always), or the legacy first container. */
  readonly nativeSidecar: boolean
  /** The default app port (--app), or null. */
  readonly appPort: number | null
  /** The TCP ports the pod declares (and the default app port), all intercepted, with their declared protocols. */
  readonly ports: readonly { readonly port: number; readonly protocol?: PortProtocol }[]
}

/**
 * Polls the sidecar's admin /ready on loopback: the probes (the admin port is not exposed) and the
 * postStart hook of non-native sidecars. Node is the client, the image has no curl.
 */
export function readyScript(timeoutMs: number): string {
  return (
    `const h=require('node:http'),end=Date.now()+${timeoutMs};` +
    `function t(){h.get({host:'127.0.0.1',port:${PROXY_PORTS.admin},path:'/ready',timeout:1000},(r)=>{r.resume();r.statusCode===200?process.exit(0):again()})` +
    `.on('error',again).on('timeout',function(){this.destroy()})}` +
    `function again(){Date.now()>end?process.exit(1):setTimeout(t,200)}t()`
  )
}

function clone<T>(v: T): T {
  return structuredClone(v)
}

function parsePorts(annotations: Readonly<Record<string, string>>, key: string): number[] {
  const raw = annotations[key]
  if (raw === undefined || raw.trim() === '') return []
  const out: number[] = []
  for (const part of raw.split(',')) {
    const p = part.trim()
    const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN
    if (!(n >= 1 && n <= 65535)) throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${key}: "${p}" is not a port (1..65535)`)
    if (!out.includes(n)) out.push(n)
  }
  return out
}

function parseCidrs(annotations: Readonly<Record<string, string>>, key: string, ipv6: boolean): string[] {
  const raw = annotations[key]
  if (raw === undefined || raw.trim() === '') return []
  const out: string[] = []
  for (const part of raw.split(',')) {
    const c = part.trim()
    const [addr, bits, extra] = c.split('/')
    const fam = isIP(addr ?? '')
    const max = fam === 4 ? 32 : 128
    const ok = fam !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max))
    if (!ok) throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${key}: "${c}" is not an IP address or CIDR range`)
    if (fam === 6 && !ipv6) throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${key}: "${c}" is IPv6, but the injector writes IPv4 rules only (ipv6: false)`)
    out.push(bits === undefined ? `${addr}/${max}` : c)
  }
  return out
}

function parseBoolean(annotations: Readonly<Record<string, string>>, key: string): boolean | undefined {
  const raw = annotations[key]
  if (raw === undefined) return undefined
  if (raw !== 'true' && raw !== 'false') throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${key}: expected "true" or "false", got "${raw}"`)
  return raw === 'true'
}

/** Does a Service select this pod (its selector's every label, in the pod's namespace when both say)? */
function selects(svc: ServiceLike, labels: Readonly<Record<string, string>>, namespace: string | undefined): boolean {
  const selector = svc.spec?.selector ?? {}
  const keys = Object.keys(selector)
  if (keys.length === 0) return false // a Service without a selector has its endpoints managed by hand
  const ns = svc.metadata?.namespace
  if (ns !== undefined && namespace !== undefined && ns !== namespace) return false
  return keys.every((k) => labels[k] === selector[k])
}

/**
 * Every TCP port the pod's containers declare, with its declared protocol: the appProtocol of a
 * Service port that targets it (by number or by the container port's name), else the container
 * port's own, else the Service port's name, else the container port's name (Istio's order: an
 * explicit appProtocol wins over a name prefix). No protocol: the sidecar detects it.
 */
function podPorts(containers: readonly ContainerLike[], services: readonly ServiceLike[]): PodPort[] {
  const out: PodPort[] = []
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      if (typeof p.containerPort !== 'number') continue
      if ((p.protocol ?? 'TCP') !== 'TCP') continue
      if (out.some((o) => o.port === p.containerPort)) continue
      const sp = services
        .flatMap((svc) => svc.spec?.ports ?? [])
        .find((q) => (q.protocol ?? 'TCP') === 'TCP' && (typeof q.targetPort === 'number' ? q.targetPort === p.containerPort : typeof q.targetPort === 'string' ? q.targetPort === p.name : q.port === p.containerPort))
      const protocol = declaredProtocol(sp?.appProtocol ?? p.appProtocol, null) ?? declaredProtocol(null, sp?.name) ?? declaredProtocol(null, p.name)
      out.push({ port: p.containerPort, container: c.name ?? '?', ...(p.name ? { name: p.name } : {}), ...(protocol ? { protocol } : {}) })
    }
  }
  return out
}

/** HTTP by declaration, or undeclared and not a server-first port: what a caller that names no port most likely speaks. */
const isHttpish = (p: PodPort): boolean => (p.protocol === undefined ? !SERVER_FIRST_PORTS.has(p.port) : p.protocol === 'http' || p.protocol === 'http2' || p.protocol === 'grpc')

const RESERVED = Object.values(PROXY_PORTS) as number[]

/**
 * The default app port: where the sidecar forwards a mesh connection that names no port (a caller
 * through a cluster without declared ports). A connection that names one (the SNI's port, the
 * original destination) goes to that port. remora.dev/app-port when given; else the first served
 * port that is HTTP or undeclared; else the first served port; else none (a Job).
 */
function defaultAppPort(annotations: Readonly<Record<string, string>>, served: readonly PodPort[], excludedInbound: readonly number[]): number | null {
  const explicit = parsePorts(annotations, ANNOTATIONS.appPort)
  if (explicit.length > 1) throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${ANNOTATIONS.appPort}: one port only, got "${annotations[ANNOTATIONS.appPort]}"`)
  const app = explicit[0] ?? (served.find(isHttpish) ?? served[0])?.port ?? null
  if (explicit[0] !== undefined && excludedInbound.includes(explicit[0])) {
    throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${ANNOTATIONS.appPort} ${explicit[0]} is also in ${ANNOTATIONS.excludeInboundPorts}`)
  }
  for (const port of [...(app !== null ? [app] : []), ...served.map((p) => p.port)]) {
    if (RESERVED.includes(port)) {
      const p = served.find((x) => x.port === port)
      throw new InjectError('REMORA_ERR_INJECT_APP_PORT', `port ${port}${p ? ` of container ${p.container}` : ` (${ANNOTATIONS.appPort})`} is one of the sidecar's own (${RESERVED.join(', ')}); add it to ${ANNOTATIONS.excludeInboundPorts} or move the app`)
    }
  }
  return app
}

/**
 * The init container's interception flags: every inbound port goes to the sidecar ('*', also
 * init-iptables' default, written out so the pod spec says it) but the excluded ones and the
 * sidecar's own (init-iptables always returns those first), including ports the pod does not
 * declare: a port left out silently would bypass mTLS and authorization.
 */
function interceptionArgs(excludedInbound: readonly number[], excludedOutbound: readonly number[], excludedCidrs: readonly string[], ipv6: boolean): string[] {
  const args = ['init-iptables', '--proxy-uid', String(PROXY_UID), '--inbound-ports', '*']
  if (excludedInbound.length) args.push('--exclude-inbound-ports', excludedInbound.join(','))
  if (excludedOutbound.length) args.push('--exclude-outbound-ports', excludedOutbound.join(','))
  if (excludedCidrs.length) args.push('--exclude-outbound-cidrs', excludedCidrs.join(','))
  if (!ipv6) args.push('--ipv6=false')
  return args
}

/** Kubelet probes on intercepted ports reach the sidecar, not the app: said at injection, not found in production. */
function probeWarnings(containers: readonly ContainerLike[], intercepted: (port: number) => boolean): string[] {
  const out: string[] = []
  for (const c of containers) {
    for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
      const probe = c[kind] as { httpGet?: { port?: number | string }; grpc?: { port?: number }; tcpSocket?: { port?: number | string } } | undefined
      if (!probe) continue
      const resolve = (port: number | string | undefined) => (typeof port === 'string' ? c.ports?.find((p) => p.name === port)?.containerPort : port)
      for (const [how, spec] of [['httpGet', probe.httpGet], ['grpc', probe.grpc]] as const) {
        const port = resolve(spec?.port)
        if (port !== undefined && intercepted(port)) {
          out.push(
            `${c.name ?? '?'}: the ${kind} (${how} on port ${String(spec!.port)}) goes through the sidecar; with STRICT mTLS the kubelet's plain request is refused: use PERMISSIVE for port ${port}, an exec probe, or a probe port listed in ${ANNOTATIONS.excludeInboundPorts}`,
          )
        }
      }
      const tcp = resolve(probe.tcpSocket?.port)
      if (tcp !== undefined && intercepted(tcp)) {
        out.push(
          `${c.name ?? '?'}: the ${kind} (tcpSocket on port ${String(probe.tcpSocket!.port)}) connects to the sidecar, which accepts whether or not the app is up: use an exec probe, or list port ${tcp} in ${ANNOTATIONS.excludeInboundPorts}`,
        )
      }
    }
  }
  return out
}

function serviceName(pod: PodLike, ctx: InjectContext, sa: string): string {
  const labels = pod.metadata?.labels ?? {}
  const candidate = labels['app.kubernetes.io/name'] ?? labels.app ?? ctx.workloadName ?? pod.metadata?.name ?? sa
  return candidate
}

/** `$` would be read by the kubelet as a $(VAR) reference in args. */
const escapeArg = (v: string): string => v.replaceAll('$', '$$$$')

function isInjected(pod: PodLike): boolean {
  const spec = pod.spec ?? {}
  const names = [...(spec.containers ?? []), ...(spec.initContainers ?? [])].map((c) => c.name)
  return names.includes(SIDECAR_CONTAINER) || pod.metadata?.annotations?.[ANNOTATIONS.status] !== undefined
}

function readinessProbes(native: boolean): Record<string, unknown> {
  const exec = (ms: number) => ({ command: ['node', '-e', readyScript(ms)] })
  const probes: Record<string, unknown> = {
    readinessProbe: { exec: exec(1000), periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
  }
  // A native sidecar's startupProbe holds the next init containers and the app until it passes:
  // the app never sends a request before the sidecar can carry it.
  if (native) probes.startupProbe = { exec: exec(1000), periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 120 }
  return probes
}

export function injectPod(input: PodLike, cfg: InjectConfig, ctx: InjectContext = {}): InjectOutcome {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new InjectError('REMORA_ERR_INJECT_BAD_DOCUMENT', 'a pod must be a mapping')
  const annotations = input.metadata?.annotations ?? {}
  const opt = annotations[ANNOTATIONS.inject]
  if (opt !== undefined && opt !== 'true' && opt !== 'false') {
    throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${ANNOTATIONS.inject}: expected "true" or "false", got "${opt}"`)
  }
  if (opt === 'false') return { injected: false, pod: input, reason: `opted out (${ANNOTATIONS.inject}: "false")`, warnings: [] }
  if (isInjected(input)) return { injected: false, pod: input, reason: 'already injected', warnings: [] }
  const spec = input.spec
  if (!spec || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    throw new InjectError('REMORA_ERR_INJECT_BAD_DOCUMENT', 'spec.containers is missing or empty')
  }
  if (spec.hostNetwork === true) {
    // Interception rules would be written into the node's own network namespace.
    return { injected: false, pod: input, reason: 'hostNetwork pods are never injected', warnings: [] }
  }

  const excludedInbound = parsePorts(annotations, ANNOTATIONS.excludeInboundPorts)
  const excludedOutbound = parsePorts(annotations, ANNOTATIONS.excludeOutboundPorts)
  const excludedCidrs = parseCidrs(annotations, ANNOTATIONS.excludeOutboundCidrs, cfg.ipv6)
  // Istio's sidecar.istio.io/nativeSidecar: the pod's annotation wins over the injector's default.
  const native = parseBoolean(annotations, ANNOTATIONS.nativeSidecar) ?? cfg.nativeSidecar
  const labels = input.metadata?.labels ?? {}
  const namespace = input.metadata?.namespace ?? ctx.namespace
  const services = (ctx.services ?? []).filter((svc) => selects(svc, labels, namespace))
  const served = podPorts(spec.containers, services).filter((p) => !excludedInbound.includes(p.port))
  const appPort = defaultAppPort(annotations, served, excludedInbound)
  const inbound = [...served.map((p) => p.port), ...(appPort !== null && !served.some((p) => p.port === appPort) ? [appPort] : [])]
  const warnings: string[] = probeWarnings(spec.containers, (port) => !excludedInbound.includes(port) && !RESERVED.includes(port))

  const pod = clone(input)
  const podSpec = pod.spec!
  const sa = podSpec.serviceAccountName ?? 'default'
  const service = serviceName(pod, ctx, sa)

  const initArgs = interceptionArgs(excludedInbound, excludedOutbound, excludedCidrs, cfg.ipv6)

  const init: ContainerLike = {
    name: INIT_CONTAINER,
    image: cfg.image,
    imagePullPolicy: cfg.imagePullPolicy,
    args: initArgs,
    resources: cfg.initResources,
    // Writing NAT rules needs root with NET_ADMIN/NET_RAW in the pod's network namespace, nothing
    // more; iptables takes its lock under /run, so the root filesystem stays writable here only.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  }

  // The SidecarConfig fields, as `remora proxy` flags (`--set path=value` for the rest): identity,
  // clusters and policies come from the control plane, which verifies the projected token with
  // the TokenReview API at bootstrap.
  const proxyArgs = [
    'proxy',
    '--trust-domain',
    cfg.trustDomain,
    '--namespace',
    '$(REMORA_POD_NAMESPACE)',
    '--service-account',
    '$(REMORA_SERVICE_ACCOUNT)',
    '--set',
    'workload.name=$(REMORA_POD_NAME)',
    '--control-plane',
    cfg.controlPlane,
    '--set',
    `controlPlane.caFile=${TOKEN_DIR}/${CA_FILE}`,
    '--set',
    `controlPlane.tokenFile=${TOKEN_DIR}/${TOKEN_FILE}`,
    '--set',
    `controlPlane.stateDir=${STATE_DIR}`,
    '--set',
    `controlPlane.service=${escapeArg(service)}`,
    '--set',
    `controlPlane.advertise=$(REMORA_POD_IP):${PROXY_PORTS.inbound}`,
  ]
  if (appPort !== null) proxyArgs.push('--app', `127.0.0.1:${appPort}`)
  for (const [k, v] of Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) proxyArgs.push('--label', escapeArg(`${k}=${v}`))

  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } })
  const sidecar: ContainerLike = {
    name: SIDECAR_CONTAINER,
    image: cfg.image,
    imagePullPolicy: cfg.imagePullPolicy,
    args: proxyArgs,
    env: [
      fieldEnv('REMORA_POD_NAME', 'metadata.name'),
      fieldEnv('REMORA_POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('REMORA_POD_IP', 'status.podIP'),
      fieldEnv('REMORA_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    ],
    ports: [
      { name: 'remora-inbound', containerPort: PROXY_PORTS.inbound, protocol: 'TCP' },
      { name: 'remora-metrics', containerPort: PROXY_PORTS.metrics, protocol: 'TCP' },
    ],
    resources: cfg.proxyResources,
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: STATE_VOLUME, mountPath: STATE_DIR },
    ],
    ...readinessProbes(native),
  }

  const existingInit = podSpec.initContainers ?? []
  if (native) {
    sidecar.restartPolicy = 'Always'
    podSpec.initContainers = [init, sidecar, ...existingInit]
  } else {
    // Kubernetes starts containers in order and runs postStart before the next one: the app
    // waits until the sidecar answers /ready (Istio's holdApplicationUntilProxyStarts).
    sidecar.lifecycle = { postStart: { exec: { command: ['node', '-e', readyScript(120_000)] } } }
    podSpec.initContainers = [init, ...existingInit]
    podSpec.containers = [sidecar, ...podSpec.containers!]
    if (existingInit.length > 0) {
      warnings.push(
        `init containers ${existingInit.map((c) => c.name).join(', ')} run before the sidecar (a legacy sidecar, not native): their outbound TCP is intercepted with nothing listening; exclude their ports or CIDRs`,
      )
    }
  }

  podSpec.volumes = [
    ...(podSpec.volumes ?? []),
    {
      name: TOKEN_VOLUME,
      projected: {
        // Only the sidecar mounts this volume; 0444 lets its non-root UID read the token whatever
        // the pod's fsGroup.
        defaultMode: 0o444,
        sources: [
          { serviceAccountToken: { audience: cfg.tokenAudience, expirationSeconds: cfg.tokenExpirationSeconds, path: TOKEN_FILE } },
          // The control plane's CA, published into each injected namespace by the control plane.
          { configMap: { name: cfg.caConfigMap, items: [{ key: CA_FILE, path: CA_FILE }] } },
        ],
      },
    },
    { name: STATE_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
  ]

  const status: InjectionStatus = {
    version: 1,
    initContainers: native ? [INIT_CONTAINER, SIDECAR_CONTAINER] : [INIT_CONTAINER],
    containers: native ? [] : [SIDECAR_CONTAINER],
    volumes: [TOKEN_VOLUME, STATE_VOLUME],
    nativeSidecar: native,
    appPort,
    ports: inbound.map((port) => {
      const protocol = served.find((p) => p.port === port)?.protocol
      return { port, ...(protocol ? { protocol } : {}) }
    }),
  }
  pod.metadata = { ...(pod.metadata ?? {}) }
  const firstApp = input.spec!.containers![0]!.name
  pod.metadata.annotations = {
    ...(pod.metadata.annotations ?? {}),
    [ANNOTATIONS.status]: JSON.stringify(status),
    ...(firstApp ? { 'kubectl.kubernetes.io/default-container': pod.metadata.annotations?.['kubectl.kubernetes.io/default-container'] ?? firstApp } : {}),
  }
  return { injected: true, pod, warnings }
}
