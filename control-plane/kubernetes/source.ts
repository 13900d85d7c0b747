import { validate, type PolicyDocument, type PolicyIssue } from '../../proxy/policy/index.js'
import type { KubeClient } from './client.js'
import { keyOf, Reflector, type KubeObject, type ReflectorEvent } from './reflector.js'

// Kubernetes as a source of policies for the control plane: the three kinds of
// security.remora.dev/v1 (and security.istio.io/v1 when that API is served), validated one by one
// with the same validator as everywhere; the valid set goes to onPolicies, and each remora
// policy's status says Valid or Invalid: <reason> (`kubectl get` shows it). An invalid policy
// never reaches sidecars.

export const POLICY_RESOURCES = [
  { kind: 'AuthorizationPolicy', plural: 'authorizationpolicies' },
  { kind: 'RequestAuthentication', plural: 'requestauthentications' },
  { kind: 'PeerAuthentication', plural: 'peerauthentications' },
] as const

export const REMORA_GROUP = 'security.remora.dev/v1'
export const ISTIO_GROUP = 'security.istio.io/v1'

export interface SourceLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

export interface KubernetesSourceOptions {
  readonly trustDomain?: string
  readonly rootNamespace?: string
  /** Also read security.istio.io/v1 (read-only): true, false, or 'auto' (when the API is served). */
  readonly istio?: boolean | 'auto'
  /**
   * The full valid set, each time it or the set of invalid policies changes (sorted by kind,
   * namespace, name); `errors` are the invalid policies' issues, source `kubernetes:<group>/<plural>/<ns>/<name>`.
   */
  readonly onPolicies: (policies: PolicyDocument[], errors: PolicyIssue[]) => void
  readonly logger?: SourceLogger
  readonly retryMs?: number
}

/** What the status subresource says: "Valid", or "Invalid: <path>: <message>". */
export interface PolicyVerdict {
  readonly validation: string
  readonly errors: string[]
}

const clean = (o: KubeObject): Record<string, unknown> => {
  // Server-side bookkeeping is accepted by the validator, but it must not change the snapshot
  // version when only a status or a managedField moved.
  const { status: _s, ...rest } = o
  const { managedFields: _m, resourceVersion: _r, uid: _u, generation: _g, selfLink: _l, ...meta } = o.metadata
  return { ...rest, metadata: meta }
}

export class KubernetesPolicySource {
  readonly #client: KubeClient
  readonly #o: KubernetesSourceOptions
  readonly #reflectors: Reflector[] = []
  readonly #objects = new Map<string, KubeObject>()
  /** key → "generation|verdict" last written, so our own status patch does not loop. */
  readonly #written = new Map<string, string>()
  #scheduled = false
  #lastSet = ''
  #closed = false

  private constructor(client: KubeClient, o: KubernetesSourceOptions) {
    this.#client = client
    this.#o = o
  }

  static async start(client: KubeClient, o: KubernetesSourceOptions): Promise<KubernetesPolicySource> {
    const s = new KubernetesPolicySource(client, o)
    const groups = [REMORA_GROUP]
    const istio = o.istio ?? 'auto'
    if (istio === true || (istio === 'auto' && (await client.request('GET', `/apis/${ISTIO_GROUP}`)).status === 200)) groups.push(ISTIO_GROUP)
    let pending = groups.length * POLICY_RESOURCES.length
    let synced!: () => void
    const allSynced = new Promise<void>((r) => (synced = r))
    for (const group of groups) {
      for (const r of POLICY_RESOURCES) {
        let first = true
        s.#reflectors.push(
          new Reflector(client, {
            path: `/apis/${group}/${r.plural}`,
            retryMs: o.retryMs,
            onEvent: (e) => s.#onEvent(group, r.plural, e),
            onSynced: () => {
              if (first && --pending === 0) synced()
              first = false
              s.#schedule()
            },
            onError: (err) => o.logger?.warn({ event: 'kubernetes_watch_error', resource: `${group}/${r.plural}`, err: err.message }, 'list/watch failed; retrying'),
          }),
        )
      }
    }
    await allSynced
    // The first set is delivered before start() resolves: a control plane never publishes an
    // empty set while the lists are still being validated.
    await s.#recompute()
    return s
  }

  /** How many lists the reflectors made (the first ones included): > the reflector count after a 410. */
  get lists(): number {
    return this.#reflectors.reduce((n, r) => n + r.lists, 0)
  }

  #onEvent(group: string, plural: string, e: ReflectorEvent): void {
    const key = `${group}/${plural}/${keyOf(e.object)}`
    if (e.type === 'DELETED') {
      this.#objects.delete(key)
      this.#written.delete(key)
    } else this.#objects.set(key, { ...e.object, apiVersion: group, kind: POLICY_RESOURCES.find((r) => r.plural === plural)!.kind })
    this.#schedule()
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      void this.#recompute()
    })
  }

  async #recompute(): Promise<void> {
    const valid: PolicyDocument[] = []
    const errors: PolicyIssue[] = []
    const ids = new Set<string>()
    const opts = { trustDomains: this.#o.trustDomain ? [this.#o.trustDomain] : undefined, rootNamespace: this.#o.rootNamespace }
    const patches: Promise<void>[] = []
    // security.remora.dev first: when both groups define one name, remora's wins.
    const entries = [...this.#objects.entries()].sort(([a], [b]) => (a.startsWith(REMORA_GROUP) === b.startsWith(REMORA_GROUP) ? (a < b ? -1 : 1) : a.startsWith(REMORA_GROUP) ? -1 : 1))
    for (const [key, obj] of entries) {
      const r = validate(clean(obj), opts)
      const verdict: PolicyVerdict = r.policy
        ? { validation: 'Valid', errors: [] }
        : { validation: `Invalid: ${r.errors[0]!.path}: ${r.errors[0]!.message}`, errors: r.errors.map((e) => `${e.path}: ${e.message} (${e.code})`) }
      if (!r.policy) errors.push(...r.errors.map((e) => ({ ...e, source: `kubernetes:${key}` })))
      if (r.policy) {
        const id = `${r.policy.kind} ${r.policy.metadata.namespace}/${r.policy.metadata.name}`
        if (!ids.has(id)) {
          ids.add(id)
          valid.push(r.policy)
        }
      }
      if (key.startsWith(`${REMORA_GROUP}/`)) patches.push(this.#writeStatus(key, obj, verdict))
    }
    valid.sort((a, b) => (`${a.kind}/${a.metadata.namespace}/${a.metadata.name}` < `${b.kind}/${b.metadata.namespace}/${b.metadata.name}` ? -1 : 1))
    const setKey = JSON.stringify([valid, errors])
    if (setKey !== this.#lastSet) {
      this.#lastSet = setKey
      this.#o.onPolicies(valid, errors)
    }
    await Promise.all(patches)
  }

  async #writeStatus(key: string, obj: KubeObject, verdict: PolicyVerdict): Promise<void> {
    const generation = obj.metadata.generation ?? 0
    const mark = `${generation}|${verdict.validation}|${verdict.errors.join('\n')}`
    const current = obj.status as { validation?: string; observedGeneration?: number } | undefined
    if (this.#written.get(key) === mark || (current?.validation === verdict.validation && current?.observedGeneration === generation)) return
    this.#written.set(key, mark)
    const plural = key.split('/')[2]!
    const ok = verdict.validation === 'Valid'
    const body = {
      status: {
        validation: verdict.validation,
        errors: verdict.errors,
        observedGeneration: generation,
        conditions: [
          {
            type: 'Valid',
            status: ok ? 'True' : 'False',
            reason: ok ? 'Validated' : 'ValidationFailed',
            message: ok ? 'accepted by the remora validator' : verdict.validation.slice('Invalid: '.length),
            observedGeneration: generation,
            lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          },
        ],
      },
    }
    const path = `/apis/${REMORA_GROUP}/namespaces/${obj.metadata.namespace}/${plural}/${obj.metadata.name}/status`
    try {
      const r = await this.#client.request('PATCH', path, body, 'application/merge-patch+json')
      if (r.status >= 300) throw new Error(`HTTP ${r.status}: ${r.body?.message ?? ''}`)
      this.#o.logger?.info({ event: 'policy_status', policy: `${obj.metadata.namespace}/${obj.metadata.name}`, validation: verdict.validation }, 'policy status written')
    } catch (err) {
      this.#written.delete(key)
      this.#o.logger?.warn({ event: 'policy_status_failed', policy: `${obj.metadata.namespace}/${obj.metadata.name}`, err: (err as Error).message }, 'cannot write the policy status')
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.all(this.#reflectors.map((r) => r.close()))
  }
}
