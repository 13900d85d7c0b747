import { isIP } from 'node:net'
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

export interface InjectContext {
  /** The pod's namespace when metadata has none (AdmissionRequest.namespace). */
  readonly namespace?: string
  /** The owning workload's name (Deployment, Job…): the default service name. */
  readonly workloadName?: string
}

export type InjectOutcome =
  | { readonly injected: true; readonly pod: PodLike; readonly warnings: readonly string[] }
  | { readonly injected: false; readonly pod: PodLike; readonly reason: string; readonly warnings: readonly string[] }

/** What the status annotation records: the names injection added. */
export interface InjectionStatus {
  readonly version: 1
  readonly initContainers: readonly string[]
  readonly containers: readonly string[]
  readonly volumes: readonly string[]
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

const NON_HTTP_NAME = /^(tcp|tls|https|grpc|grpc-web|http2|h2c|mongo|mysql|redis|udp|mqtt|amqp|kafka|postgres|postgresql)(-|$)/i
const HTTP_APP_PROTOCOLS = new Set(['http', 'HTTP', 'kubernetes.io/http'])

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

function parseCidrs(annotations: Readonly<Record<string, string>>, key: string): string[] {
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
    if (fam === 6) throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${key}: "${c}": IPv6 interception is not supported yet`)
    out.push(bits === undefined ? `${addr}/32` : c)
  }
  return out
}

interface DeclaredPort {
  readonly container: string
  readonly port: number
  readonly name: string | undefined
  readonly appProtocol: string | undefined
}

function declaredTcpPorts(containers: readonly ContainerLike[]): DeclaredPort[] {
  const out: DeclaredPort[] = []
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      if (typeof p.containerPort !== 'number') continue
      if ((p.protocol ?? 'TCP') !== 'TCP') continue
      if (out.some((o) => o.port === p.containerPort)) continue
      out.push({ container: c.name ?? '?', port: p.containerPort, name: p.name, appProtocol: p.appProtocol })
    }
  }
  return out
}

function isNonHttp(p: DeclaredPort): boolean {
  if (p.appProtocol !== undefined) return !HTTP_APP_PROTOCOLS.has(p.appProtocol)
  return p.name !== undefined && NON_HTTP_NAME.test(p.name)
}

function describePort(p: DeclaredPort): string {
  return `${p.port}${p.name ? ` (${p.name})` : ''} of container ${p.container}`
}

/**
 * The one inbound port the sidecar forwards to. Every other declared TCP port must be excluded:
 * remora cannot read a connection's original destination, so an intercepted second port would be
 * sent to the app port, and a port left out silently would bypass mTLS and authorization.
 */
function chooseAppPort(annotations: Readonly<Record<string, string>>, containers: readonly ContainerLike[], excludedInbound: readonly number[]): number | null {
  const declared = declaredTcpPorts(containers).filter((p) => !excludedInbound.includes(p.port))
  const explicit = parsePorts(annotations, ANNOTATIONS.appPort)
  if (explicit.length > 1) throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${ANNOTATIONS.appPort}: one port only, got "${annotations[ANNOTATIONS.appPort]}"`)
  const fix = `add them to the ${ANNOTATIONS.excludeInboundPorts} annotation (they then bypass the sidecar) or set ${ANNOTATIONS.appPort}`
  let app: number | null
  if (explicit[0] !== undefined) {
    app = explicit[0]
    if (excludedInbound.includes(app)) {
      throw new InjectError('REMORA_ERR_INJECT_BAD_ANNOTATION', `${ANNOTATIONS.appPort} ${app} is also in ${ANNOTATIONS.excludeInboundPorts}`)
    }
    const others = declared.filter((p) => p.port !== app)
    if (others.length > 0) {
      throw new InjectError(
        'REMORA_ERR_INJECT_APP_PORT',
        `ports ${others.map(describePort).join(', ')} would be intercepted but inbound traffic only reaches the app port ${app}; add them to ${ANNOTATIONS.excludeInboundPorts}`,
      )
    }
  } else if (declared.length === 0) {
    app = null
  } else if (declared.length === 1) {
    app = declared[0]!.port
  } else {
    throw new InjectError('REMORA_ERR_INJECT_APP_PORT', `the pod declares several TCP ports (${declared.map(describePort).join(', ')}); ${fix}`)
  }
  const appDecl = declared.find((p) => p.port === app)
  if (appDecl && isNonHttp(appDecl)) {
    throw new InjectError(
      'REMORA_ERR_INJECT_NON_HTTP_PORT',
      `port ${describePort(appDecl)} is not HTTP (by its ${appDecl.appProtocol !== undefined ? `appProtocol "${appDecl.appProtocol}"` : 'name'}); remora proxies HTTP/1.1 only: add it to ${ANNOTATIONS.excludeInboundPorts}`,
    )
  }
  for (const reserved of Object.values(PROXY_PORTS)) {
    if (app === reserved || declared.some((p) => p.port === reserved)) {
      throw new InjectError('REMORA_ERR_INJECT_APP_PORT', `port ${reserved} is reserved for the sidecar (15000, 15001, 15006, 15090)`)
    }
  }
  return app
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

function readinessProbes(cfg: InjectConfig): Record<string, unknown> {
  const exec = (ms: number) => ({ command: ['node', '-e', readyScript(ms)] })
  const probes: Record<string, unknown> = {
    readinessProbe: { exec: exec(1000), periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
  }
  // A native sidecar's startupProbe holds the next init containers and the app until it passes:
  // the app never sends a request before the sidecar can carry it.
  if (cfg.nativeSidecar) probes.startupProbe = { exec: exec(1000), periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 120 }
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
  const excludedCidrs = parseCidrs(annotations, ANNOTATIONS.excludeOutboundCidrs)
  const appPort = chooseAppPort(annotations, spec.containers, excludedInbound)
  const warnings: string[] = []

  const pod = clone(input)
  const podSpec = pod.spec!
  const sa = podSpec.serviceAccountName ?? 'default'
  const service = serviceName(pod, ctx, sa)
  const labels = pod.metadata?.labels ?? {}

  const initArgs = ['init-iptables', '--proxy-uid', String(PROXY_UID)]
  if (appPort !== null) initArgs.push('--inbound-ports', String(appPort))
  if (excludedOutbound.length) initArgs.push('--exclude-outbound-ports', excludedOutbound.join(','))
  if (excludedCidrs.length) initArgs.push('--exclude-outbound-cidrs', excludedCidrs.join(','))

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
    ...readinessProbes(cfg),
  }

  const existingInit = podSpec.initContainers ?? []
  if (cfg.nativeSidecar) {
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
        `init containers ${existingInit.map((c) => c.name).join(', ')} run before the sidecar (nativeSidecar is off): their outbound TCP is intercepted with nothing listening; exclude their ports or CIDRs`,
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

  if (appPort !== null) {
    for (const c of input.spec!.containers!) {
      for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
        const probe = c[kind] as { httpGet?: { port?: number | string } } | undefined
        const port = probe?.httpGet?.port
        const named = typeof port === 'string' ? c.ports?.find((p) => p.name === port)?.containerPort : port
        if (named === appPort) {
          warnings.push(
            `${c.name ?? '?'}: the ${kind} (httpGet on port ${String(port)}) goes through the sidecar; with STRICT mTLS the kubelet's plain request is refused: use PERMISSIVE for port ${appPort}, an exec probe, or a probe port listed in ${ANNOTATIONS.excludeInboundPorts}`,
          )
        }
      }
    }
  }

  const status: InjectionStatus = {
    version: 1,
    initContainers: cfg.nativeSidecar ? [INIT_CONTAINER, SIDECAR_CONTAINER] : [INIT_CONTAINER],
    containers: cfg.nativeSidecar ? [] : [SIDECAR_CONTAINER],
    volumes: [TOKEN_VOLUME, STATE_VOLUME],
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
