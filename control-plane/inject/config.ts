import { z } from 'zod'
import { InjectError } from './errors.js'

// What injection adds is data: one InjectConfig (flags or a ConfigMap for the webhook, flags for
// `remora inject`), validated once at the boundary. The names below are the contract with the
// manifests, the sidecar's flags and `remora init-iptables`.

/** Pod annotations users set (Istio's habits, under remora.dev/). */
export const ANNOTATIONS = {
  /** "false" opts a pod out; "true" is accepted and changes nothing. */
  inject: 'remora.dev/inject',
  /**
   * The default app port: where a mesh connection that names no port goes (default: the first
   * HTTP or undeclared TCP containerPort). A connection to another port goes to that port.
   */
  appPort: 'remora.dev/app-port',
  /** "false": the legacy sidecar (a regular first container); "true": native. Wins over the injector's nativeSidecar (Istio's sidecar.istio.io/nativeSidecar). */
  nativeSidecar: 'remora.dev/native-sidecar',
  /** Comma-separated ports never intercepted inbound (left to the app, without mTLS). */
  excludeInboundPorts: 'remora.dev/exclude-inbound-ports',
  /** Comma-separated destination ports the app reaches directly, outside the mesh. */
  excludeOutboundPorts: 'remora.dev/exclude-outbound-ports',
  /** Comma-separated destination addresses or CIDRs (IPv4 or IPv6) the app reaches directly. */
  excludeOutboundCidrs: 'remora.dev/exclude-outbound-cidrs',
  /** Written by injection: what was added (JSON). Its presence makes injection a no-op. */
  status: 'remora.dev/status',
} as const

/** A namespace labelled `remora-injection=enabled` gets the webhook (its namespaceSelector). */
export const NAMESPACE_LABEL = 'remora-injection'
export const NAMESPACE_LABEL_VALUE = 'enabled'

export const SIDECAR_CONTAINER = 'remora-proxy'
export const INIT_CONTAINER = 'remora-init'
export const TOKEN_VOLUME = 'remora-token'
export const STATE_VOLUME = 'remora-state'
export const TOKEN_DIR = '/var/run/secrets/remora/tokens'
export const TOKEN_FILE = 'remora-token'
/** Key of the control plane's CA bundle in the per-namespace ConfigMap (and file name beside the token). */
export const CA_FILE = 'root-cert.pem'
export const STATE_DIR = '/var/lib/remora'

/** The sidecar runs as this UID; the interception rules exclude it (the image's USER). */
export const PROXY_UID = 1337
export const PROXY_PORTS = { outbound: 15001, inbound: 15006, admin: 15000, metrics: 15090 } as const

const quantity = z.string().regex(/^\d+(\.\d+)?(m|Ki|Mi|Gi|k|M|G)?$/, 'expected a Kubernetes quantity like 100m or 128Mi')
const resources = z.strictObject({ cpu: quantity, memory: quantity })

export const InjectConfigSchema = z.strictObject({
  /** The remora image: the sidecar and the init container run the same one. */
  image: z.string().min(1).default('remora:0.1.0'),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** host:port of the control plane's Service, as sidecars dial it. */
  controlPlane: z
    .string()
    .regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'expected host:port')
    .default('remora-control-plane.remora-system.svc:15010'),
  trustDomain: z.string().regex(/^[a-z0-9._-]+$/).default('cluster.local'),
  /**
   * Native sidecars (an init container with restartPolicy: Always, Kubernetes ≥ 1.29), as Istio
   * and Linkerd inject them: the sidecar starts before the app and stops after it, and Jobs
   * complete. false = the legacy sidecar, a regular first container with a postStart hook that
   * holds the app until the sidecar is ready (older clusters). A pod's remora.dev/native-sidecar
   * annotation overrides it.
   */
  nativeSidecar: z.boolean().default(true),
  /**
   * Interception for IPv6 too (ip6tables beside iptables), the default: a dual-stack or IPv6 pod's
   * traffic would otherwise bypass the sidecar. false only for nodes whose kernel has no IPv6
   * (init-iptables fails there with the fix).
   */
  ipv6: z.boolean().default(true),
  proxyResources: z
    .strictObject({ requests: resources, limits: resources })
    .default({ requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } }),
  initResources: z
    .strictObject({ requests: resources, limits: resources })
    .default({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } }),
  /** Audience of the projected service-account token the sidecar bootstraps with (TokenReview). */
  tokenAudience: z.string().min(1).default('remora'),
  tokenExpirationSeconds: z.number().int().min(600).max(86_400).default(3600),
  /** The ConfigMap (in the pod's namespace) holding the control plane's CA as root-cert.pem. */
  caConfigMap: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/).default('remora-ca-root'),
})

export type InjectConfigInput = z.input<typeof InjectConfigSchema>
export type InjectConfig = z.output<typeof InjectConfigSchema>

export function createInjectConfig(input: unknown = {}): InjectConfig {
  const r = InjectConfigSchema.safeParse(input)
  if (r.success) return r.data
  const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.code === 'unrecognized_keys' ? `unknown field ${i.keys.join(', ')}` : i.message}`)
  throw new InjectError('REMORA_ERR_INJECT_CONFIG', issues.join('; '))
}
