import { Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'

// The sidecar's metric registry. Request metrics use Istio's names, labels and buckets so that
// existing Grafana dashboards and Kiali work unchanged; everything else is remora_*.
//
// Hot path: prom-client hashes and validates the label object on every inc()/observe() (≈ 1.2–1.5 µs
// with 6 labels, more with Istio's 14). Our families instead hand out *children*: plain objects with
// number fields, created once per label combination and cached by the stages, so recording a request
// is a few additions. prom-client still owns the registry and the text format: each family is a
// metric object whose get() is called at scrape time.

export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_service',
  'destination_service_name',
  'request_protocol',
  'response_code',
  'response_flags',
  'connection_security_policy',
  // Istio's label since 1.5: on every request series, empty (so not written, see Family) unless the
  // request is gRPC. Last, so that label lists derived from this one keep their positions.
  'grpc_response_status',
] as const

/**
 * Istio's labels of istio_request_messages_total / istio_response_messages_total: the reporter and
 * the peers only (its stats filter counts messages before it adds protocol, code, flags and
 * security), the first ten of ISTIO_LABELS.
 */
export const ISTIO_MESSAGE_LABELS = ISTIO_LABELS.slice(0, 10)

/** Istio's default buckets (ms) for istio_request_duration_milliseconds. */
export const ISTIO_DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000] as const
/** Istio's default buckets for istio_request_bytes / istio_response_bytes: 1 … 10^9, ×10. */
export const ISTIO_BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000] as const

/** Cap on label combinations per family: past it, new combinations share one overflow child. */
const MAX_CHILDREN = 10_000

type Labels = Record<string, string>
interface MetricValue {
  labels: Record<string, string | number>
  value: number
  metricName?: string
}

export interface CounterChild {
  value: number
}

export class HistogramChild {
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }
  observe(v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]!) i++
    this.counts[i]!++
    this.sum += v
    this.count++
  }
}

abstract class Family<C> {
  readonly #children = new Map<string, { labels: Labels; child: C }>()
  #overflow: C | null = null
  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    readonly labelNames: readonly string[],
  ) {
    registry.registerMetric(this as never)
  }
  readonly aggregator = 'sum'
  protected abstract make(): C
  /** One child per label combination; call at build time or on a cache miss, never per request. */
  child(values: readonly string[]): C {
    const key = values.join('\u0000')
    const hit = this.#children.get(key)
    if (hit) return hit.child
    if (this.#children.size >= MAX_CHILDREN) return (this.#overflow ??= this.#add(this.labelNames.map(() => 'overflow')))
    return this.#add(values, key)
  }
  #add(values: readonly string[], key = values.join('\u0000')): C {
    // An empty value is not written: Prometheus holds a label with an empty value equal to no label
    // (`{grpc_response_status=""}` selects both), and a series without it is what every dashboard
    // written before the label existed expects.
    const labels: Labels = {}
    this.labelNames.forEach((n, i) => {
      const v = values[i] ?? ''
      if (v !== '') labels[n] = v
    })
    const child = this.make()
    this.#children.set(key, { labels, child })
    return child
  }
  protected entries(): Iterable<{ labels: Labels; child: C }> {
    return this.#children.values()
  }
  reset(): void {
    this.#children.clear()
    this.#overflow = null
  }
  protected abstract values(): MetricValue[]
  async get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator }
  }
}

export class CounterFamily extends Family<CounterChild> {
  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    super(registry, name, help, 'counter', labelNames)
  }
  protected make(): CounterChild {
    return { value: 0 }
  }
  protected values(): MetricValue[] {
    const out: MetricValue[] = []
    for (const { labels, child } of this.entries()) out.push({ labels, value: child.value })
    return out
  }
}

export class HistogramFamily extends Family<HistogramChild> {
  constructor(
    registry: Registry,
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly bounds: readonly number[],
  ) {
    super(registry, name, help, 'histogram', labelNames)
  }
  protected make(): HistogramChild {
    return new HistogramChild(this.bounds)
  }
  protected values(): MetricValue[] {
    const out: MetricValue[] = []
    for (const { labels, child } of this.entries()) {
      let acc = 0
      this.bounds.forEach((le, i) => {
        acc += child.counts[i]!
        out.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: acc })
      })
      acc += child.counts[this.bounds.length]!
      out.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc })
      out.push({ metricName: `${this.name}_sum`, labels, value: child.sum })
      out.push({ metricName: `${this.name}_count`, labels, value: child.count })
    }
    return out
  }
}

/** The four Istio request metrics for one label combination. */
export class RequestChild {
  constructor(
    private readonly requests: CounterChild,
    private readonly duration: HistogramChild,
    private readonly requestBytes: HistogramChild,
    private readonly responseBytes: HistogramChild,
  ) {}
  record(durationMs: number, bytesReceived: number, bytesSent: number): void {
    this.requests.value++
    this.duration.observe(durationMs)
    this.requestBytes.observe(bytesReceived)
    this.responseBytes.observe(bytesSent)
  }
}

/** Istio's gRPC message counters for one label combination (ISTIO_MESSAGE_LABELS). */
export interface MessageChildren {
  readonly request: CounterChild
  readonly response: CounterChild
}

export interface AuthzChildren {
  readonly allow: CounterChild
  readonly deny: CounterChild
}

export interface MetricsSources {
  /** Seconds until the workload certificate expires. */
  certExpirySeconds(): number
  /** Open upstream connections, by cluster. */
  upstreamConnections(): Iterable<[cluster: string, active: number]>
}

/**
 * prom-client's gauges named `*_total`, which `promtool check metrics` rejects ("non-counter metrics
 * should not have "_total" suffix") and Prometheus' OpenMetrics parser reads as counters. Each one
 * is the sum of the same gauge without the suffix, by `type` (the same list, counted), so nothing is
 * lost: `sum(nodejs_active_handles)` is what `nodejs_active_handles_total` was (docs/observability.md).
 * prom-client 15 can only prefix its defaults, not rename one, hence removal.
 */
export const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const

// Process metrics describe the process, not a sidecar: collected once (one event-loop monitor, one GC
// observer) and shared by every sidecar's registry, however many run in the process.
let processRegistry: Registry | null = null
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
    for (const name of DROPPED_DEFAULT_METRICS) processRegistry.removeSingleMetric(name)
  }
  return processRegistry
}

/** Every metric one sidecar exports, on its own registry (tests run several sidecars in one process). */
export class SidecarMetrics {
  readonly registry = new Registry()
  readonly requests: CounterFamily
  readonly duration: HistogramFamily
  readonly requestBytes: HistogramFamily
  readonly responseBytes: HistogramFamily
  readonly requestMessages: CounterFamily
  readonly responseMessages: CounterFamily
  readonly authzDecisions: CounterFamily
  readonly jwtValidations: CounterFamily
  readonly configRejected: CounterChild
  readonly spansExported: CounterChild
  readonly spansDropped: CounterFamily
  #configVersion = ''
  #sources: MetricsSources | null = null

  constructor(opts: { processMetrics?: boolean } = {}) {
    const r = this.registry
    this.requests = new CounterFamily(r, 'istio_requests_total', 'Requests handled by the sidecar (Istio standard metric).', ISTIO_LABELS)
    this.duration = new HistogramFamily(r, 'istio_request_duration_milliseconds', 'Request duration in milliseconds, first request byte to last response byte (Istio standard metric).', ISTIO_LABELS, ISTIO_DURATION_BUCKETS)
    this.requestBytes = new HistogramFamily(r, 'istio_request_bytes', 'Request body size in bytes (Istio standard metric).', ISTIO_LABELS, ISTIO_BYTES_BUCKETS)
    this.responseBytes = new HistogramFamily(r, 'istio_response_bytes', 'Response body size in bytes (Istio standard metric).', ISTIO_LABELS, ISTIO_BYTES_BUCKETS)
    this.requestMessages = new CounterFamily(r, 'istio_request_messages_total', 'gRPC messages sent by clients (Istio standard metric).', ISTIO_MESSAGE_LABELS)
    this.responseMessages = new CounterFamily(r, 'istio_response_messages_total', 'gRPC messages sent by servers (Istio standard metric).', ISTIO_MESSAGE_LABELS)
    this.authzDecisions = new CounterFamily(r, 'remora_authz_decisions_total', 'Authorization decisions by action, deciding policy (namespace/name, "-" for the default) and mode (enforce | dry_run).', ['action', 'policy', 'mode'])
    this.jwtValidations = new CounterFamily(r, 'remora_jwt_validations_total', 'JWT validations by result: ok, missing, or the REMORA_ERR_JWT_* code.', ['result'])
    this.configRejected = new CounterFamily(r, 'remora_config_rejected_total', 'Config or policy updates rejected (the last good config stays in force).', []).child([])
    this.spansExported = new CounterFamily(r, 'remora_tracing_spans_exported_total', 'Spans accepted by the trace collector.', []).child([])
    this.spansDropped = new CounterFamily(r, 'remora_tracing_spans_dropped_total', 'Spans dropped instead of slowing requests: queue_full, export_failed, export_timeout.', ['reason'])
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client calls collect() with the gauge as `this`
    const self = this
    new Gauge({
      name: 'remora_config_version_info',
      help: 'The config version in force (value 1, version in the label).',
      labelNames: ['version'],
      registers: [r],
      collect: function (this: Gauge) {
        this.reset()
        if (self.#configVersion) this.set({ version: self.#configVersion }, 1)
      },
    })
    new Gauge({
      name: 'remora_cert_expiry_seconds',
      help: 'Seconds until the workload certificate expires.',
      registers: [r],
      collect: function (this: Gauge) {
        if (self.#sources) this.set(Math.round(self.#sources.certExpirySeconds()))
      },
    })
    new Gauge({
      name: 'remora_upstream_cx_active',
      help: 'Open upstream connections, by cluster.',
      labelNames: ['cluster'],
      registers: [r],
      collect: function (this: Gauge) {
        this.reset()
        if (!self.#sources) return
        const sum = new Map<string, number>()
        for (const [c, n] of self.#sources.upstreamConnections()) sum.set(c, (sum.get(c) ?? 0) + n)
        for (const [c, n] of sum) this.set({ cluster: c }, n)
      },
    })
    if (opts.processMetrics !== false) for (const m of processMetrics().getMetricsAsArray()) r.registerMetric(m as unknown as Metric)
  }

  attach(sources: MetricsSources): void {
    this.#sources = sources
  }

  setConfigVersion(version: string): void {
    this.#configVersion = version
  }

  /** The four Istio families' children for one label combination (values in ISTIO_LABELS order; a missing grpc_response_status is empty). */
  requestChild(values: readonly string[]): RequestChild {
    return new RequestChild(this.requests.child(values), this.duration.child(values), this.requestBytes.child(values), this.responseBytes.child(values))
  }

  /** The two gRPC message counters for one label combination (values in ISTIO_MESSAGE_LABELS order). */
  messageChildren(values: readonly string[]): MessageChildren {
    return { request: this.requestMessages.child(values), response: this.responseMessages.child(values) }
  }

  readonly #jwt = new Map<string, CounterChild>()
  /** One JWT validation: `ok`, `missing`, or the REMORA_ERR_JWT_* code (a fixed set). */
  jwtResult(result: string): void {
    let c = this.#jwt.get(result)
    if (c === undefined) this.#jwt.set(result, (c = this.jwtValidations.child([result])))
    c.value++
  }

  authzChildren(policy: string, mode: 'enforce' | 'dry_run'): AuthzChildren {
    return { allow: this.authzDecisions.child(['ALLOW', policy, mode]), deny: this.authzDecisions.child(['DENY', policy, mode]) }
  }

  get contentType(): string {
    return this.registry.contentType
  }

  scrape(): Promise<{ contentType: string; body: string }> {
    return this.registry.metrics().then((body) => ({ contentType: this.registry.contentType, body }))
  }
}
