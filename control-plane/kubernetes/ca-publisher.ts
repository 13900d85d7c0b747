/* eslint-disable @typescript-eslint/no-explicit-any -- API server JSON: a ConfigMap's data and metadata */
import type { KubeClient } from './client.js'
import { Reflector, type KubeObject } from './reflector.js'
import type { SourceLogger } from './source.js'

// The control plane's trust bundle as the `remora-ca-root` ConfigMap (key root-cert.pem) in every
// namespace, as Istio publishes istio-ca-root-cert: the injected sidecar mounts it to authenticate
// the control plane at bootstrap. Namespaces are watched (a new one gets it at once); the
// ConfigMaps are watched too, so one edited or deleted by hand is put back. Replicas write the same
// content, so two of them racing converge (a 409 on create means another one was first).

export const CA_ROOT_CONFIGMAP = 'remora-ca-root'
export const CA_ROOT_KEY = 'root-cert.pem'
/** Namespaces that never run injected pods. */
const SKIPPED = new Set(['kube-system', 'kube-public', 'kube-node-lease'])

export interface CaRootPublisherOptions {
  readonly caPem: string
  readonly name?: string
  readonly logger?: SourceLogger
  readonly retryMs?: number
}

export class CaRootPublisher {
  readonly #client: KubeClient
  readonly #name: string
  readonly #logger: SourceLogger | undefined
  #caPem: string
  readonly #namespaces = new Set<string>()
  readonly #reflectors: Reflector[] = []
  readonly #inFlight = new Map<string, Promise<void>>()
  #closed = false

  private constructor(client: KubeClient, o: CaRootPublisherOptions) {
    this.#client = client
    this.#name = o.name ?? CA_ROOT_CONFIGMAP
    this.#logger = o.logger
    this.#caPem = o.caPem
  }

  /** Resolves once every namespace listed at start has the ConfigMap (or a write was attempted). */
  static async start(client: KubeClient, o: CaRootPublisherOptions): Promise<CaRootPublisher> {
    const p = new CaRootPublisher(client, o)
    let synced!: () => void
    const first = new Promise<void>((r) => (synced = r))
    const onError = (err: Error): void => o.logger?.warn({ event: 'kubernetes_watch_error', resource: 'ca-root', err: err.message }, 'list/watch failed; retrying')
    p.#reflectors.push(
      new Reflector(client, {
        path: '/api/v1/namespaces',
        retryMs: o.retryMs,
        onEvent: (e) => {
          const ns = e.object.metadata.name
          if (SKIPPED.has(ns)) return
          if (e.type === 'DELETED' || (e.object as any).status?.phase === 'Terminating') p.#namespaces.delete(ns)
          else if (!p.#namespaces.has(ns)) {
            p.#namespaces.add(ns)
            void p.#ensure(ns)
          }
        },
        onSynced: () => synced(),
        onError,
      }),
      new Reflector(client, {
        path: `/api/v1/configmaps?fieldSelector=${encodeURIComponent(`metadata.name=${p.#name}`)}`,
        retryMs: o.retryMs,
        onEvent: (e) => {
          const ns = e.object.metadata.namespace ?? ''
          if (!p.#namespaces.has(ns)) return
          if (e.type === 'DELETED' || !p.#isCurrent(e.object)) void p.#ensure(ns)
        },
        onError,
      }),
    )
    await first
    await Promise.all(p.#inFlight.values())
    return p
  }

  /** A new trust bundle (CA rotation): every namespace gets it. */
  async update(caPem: string): Promise<void> {
    if (caPem === this.#caPem) return
    this.#caPem = caPem
    await Promise.all([...this.#namespaces].map((ns) => this.#ensure(ns)))
  }

  #isCurrent(cm: KubeObject): boolean {
    return (cm as any).data?.[CA_ROOT_KEY] === this.#caPem
  }

  /** One write at a time per namespace; a change meanwhile is picked up by a second pass. */
  #ensure(ns: string): Promise<void> {
    const prev = this.#inFlight.get(ns) ?? Promise.resolve()
    const next = prev.then(() => this.#write(ns)).finally(() => {
      if (this.#inFlight.get(ns) === next) this.#inFlight.delete(ns)
    })
    this.#inFlight.set(ns, next)
    return next
  }

  async #write(ns: string): Promise<void> {
    if (this.#closed) return
    const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: this.#name, namespace: ns, labels: { 'app.kubernetes.io/managed-by': 'remora-control-plane' } },
      data: { [CA_ROOT_KEY]: this.#caPem },
    }
    try {
      const cur = await this.#client.request('GET', `${path}/${this.#name}`)
      let r
      if (cur.status === 404) {
        r = await this.#client.request('POST', path, body)
        if (r.status === 409) return // another replica created it; its watch event brings it here to check
      } else if (cur.status === 200) {
        if (this.#isCurrent(cur.body)) return
        r = await this.#client.request('PUT', `${path}/${this.#name}`, { ...body, metadata: { ...body.metadata, resourceVersion: cur.body.metadata?.resourceVersion } })
        if (r.status === 409) return void this.#ensure(ns) // changed under us: read again
      } else throw new Error(`HTTP ${cur.status}: ${cur.body?.message ?? ''}`)
      if (r.status >= 300) throw new Error(`HTTP ${r.status}: ${r.body?.message ?? ''}`)
      this.#logger?.info({ event: 'ca_root_published', namespace: ns, configMap: this.#name }, 'CA root ConfigMap written')
    } catch (err) {
      this.#logger?.warn({ event: 'ca_root_publish_failed', namespace: ns, err: (err as Error).message }, 'cannot write the CA root ConfigMap')
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.all(this.#reflectors.map((r) => r.close()))
  }
}
