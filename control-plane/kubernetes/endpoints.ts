/* eslint-disable @typescript-eslint/no-explicit-any -- API server JSON: pods' and EndpointSlices' few fields read here */
import type { ClusterPort } from '../../proxy/snapshot/index.js'
import type { KubeClient } from './client.js'
import { Reflector, type KubeObject } from './reflector.js'
import { serviceFacts } from './services.js'
import type { SourceLogger } from './source.js'

// Discovery from the cluster: every ready endpoint of a Service (EndpointSlices) whose pod carries
// a remora sidecar becomes a mesh endpoint of the cluster <service>.<namespace>, at the pod's IP
// and the sidecar's inbound port, with the pod's service account as the identity secure naming
// requires. Pods without a sidecar (no remora.dev/status) are left out: they cannot speak mTLS.
// The Service itself adds its ClusterIPs and TCP ports (services.ts), carried on each endpoint so
// the feed stays one list: every endpoint of a Service carries the same facts.

export interface MeshEndpoint {
  readonly service: string
  readonly namespace: string
  /** podIP:inboundPort */
  readonly address: string
  readonly serviceAccount: string
  readonly identity: string
  /** The Service's ClusterIPs (absent: the Service is not known yet, or headless). */
  readonly addresses?: readonly string[]
  /** The Service's TCP ports (absent: the Service is not known yet). */
  readonly ports?: readonly ClusterPort[]
}

export interface KubernetesEndpointsOptions {
  readonly trustDomain: string
  readonly onEndpoints: (endpoints: MeshEndpoint[]) => void
  /** The injected sidecar's inbound port (default 15006). */
  readonly inboundPort?: number
  readonly logger?: SourceLogger
  readonly retryMs?: number
}

const INJECTED = 'remora.dev/status'

export class KubernetesEndpoints {
  readonly #o: KubernetesEndpointsOptions
  readonly #pods = new Map<string, { sa: string; injected: boolean }>()
  readonly #slices = new Map<string, KubeObject>()
  readonly #services = new Map<string, KubeObject>()
  readonly #reflectors: Reflector[] = []
  #last = ''
  #scheduled = false

  private constructor(o: KubernetesEndpointsOptions) {
    this.#o = o
  }

  /** Resolves after the three lists (pods, EndpointSlices, Services) and the first delivery of endpoints. */
  static async start(client: KubeClient, o: KubernetesEndpointsOptions): Promise<KubernetesEndpoints> {
    const d = new KubernetesEndpoints(o)
    let pending = 3
    let synced!: () => void
    const all = new Promise<void>((r) => (synced = r))
    const onError = (resource: string) => (err: Error) => o.logger?.warn({ event: 'kubernetes_watch_error', resource, err: err.message }, 'list/watch failed; retrying')
    const once = (): (() => void) => {
      let first = true
      return () => {
        if (first && --pending === 0) synced()
        first = false
        d.#schedule()
      }
    }
    d.#reflectors.push(
      new Reflector(client, {
        path: '/api/v1/pods',
        retryMs: o.retryMs,
        onEvent: (e) => {
          const k = `${e.object.metadata.namespace}/${e.object.metadata.name}`
          const o2 = e.object as any
          if (e.type === 'DELETED') d.#pods.delete(k)
          else d.#pods.set(k, { sa: String(o2.spec?.serviceAccountName ?? 'default'), injected: o2.metadata?.annotations?.[INJECTED] !== undefined })
          d.#schedule()
        },
        onSynced: once(),
        onError: onError('pods'),
      }),
      new Reflector(client, {
        path: '/apis/discovery.k8s.io/v1/endpointslices',
        retryMs: o.retryMs,
        onEvent: (e) => {
          const k = `${e.object.metadata.namespace}/${e.object.metadata.name}`
          if (e.type === 'DELETED') d.#slices.delete(k)
          else d.#slices.set(k, e.object)
          d.#schedule()
        },
        onSynced: once(),
        onError: onError('endpointslices'),
      }),
      new Reflector(client, {
        path: '/api/v1/services',
        retryMs: o.retryMs,
        onEvent: (e) => {
          const k = `${e.object.metadata.namespace}/${e.object.metadata.name}`
          if (e.type === 'DELETED') d.#services.delete(k)
          else d.#services.set(k, e.object)
          d.#schedule()
        },
        onSynced: once(),
        onError: onError('services'),
      }),
    )
    await all
    d.#compute()
    return d
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#compute()
    })
  }

  #compute(): void {
    const port = this.#o.inboundPort ?? 15006
    const out = new Map<string, MeshEndpoint>()
    const slicesOf = new Map<string, any[]>()
    for (const s of this.#slices.values()) {
      const service = (s as any).metadata?.labels?.['kubernetes.io/service-name']
      if (typeof service !== 'string') continue
      const k = `${s.metadata.namespace ?? ''}/${service}`
      slicesOf.set(k, [...(slicesOf.get(k) ?? []), s])
    }
    const facts = new Map<string, { addresses?: readonly string[]; ports?: readonly ClusterPort[] }>()
    const factsOf = (ns: string, service: string) => {
      const k = `${ns}/${service}`
      let f = facts.get(k)
      if (!f) {
        const svc = this.#services.get(k)
        const sf = svc ? serviceFacts(svc, slicesOf.get(k) ?? []) : null
        f = sf ? { ...(sf.addresses.length ? { addresses: sf.addresses } : {}), ports: sf.ports } : {}
        facts.set(k, f)
      }
      return f
    }
    for (const s of this.#slices.values()) {
      const slice = s as any
      const ns = String(s.metadata.namespace ?? '')
      const service = slice.metadata?.labels?.['kubernetes.io/service-name']
      if (typeof service !== 'string' || slice.addressType === 'FQDN') continue
      for (const ep of slice.endpoints ?? []) {
        if (ep.conditions?.ready === false) continue // unknown (absent) counts as ready, as kube-proxy does
        if (ep.targetRef?.kind !== 'Pod') continue
        const pod = this.#pods.get(`${ns}/${ep.targetRef.name}`)
        if (!pod?.injected) continue
        for (const ip of ep.addresses ?? []) {
          const address = String(ip).includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
          out.set(`${service}.${ns}|${address}`, {
            service,
            namespace: ns,
            address,
            serviceAccount: pod.sa,
            identity: `spiffe://${this.#o.trustDomain}/ns/${ns}/sa/${pod.sa}`,
            ...factsOf(ns, service),
          })
        }
      }
    }
    const list = [...out.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, e]) => e)
    const key = JSON.stringify(list)
    if (key === this.#last) return
    this.#last = key
    this.#o.onEndpoints(list)
  }

  async close(): Promise<void> {
    await Promise.all(this.#reflectors.map((r) => r.close()))
  }
}

/** The control plane's DiscoveryFeed, shaped without importing it. */
export function createKubernetesDiscoveryFeed(
  client: KubeClient,
  o: { inboundPort?: number; logger?: SourceLogger; retryMs?: number } = {},
): { start(ctx: { trustDomain: string; onEndpoints: (endpoints: MeshEndpoint[]) => void }): Promise<{ close(): Promise<void> }> } {
  return { start: (ctx) => KubernetesEndpoints.start(client, { ...o, trustDomain: ctx.trustDomain, onEndpoints: ctx.onEndpoints }) }
}
