import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

/** The control plane's own metrics (remora_cp_*), registered on the replica's registry. */
export interface CpMetrics {
  readonly connected: Gauge
  readonly pushes: Counter
  readonly acks: Counter
  readonly nacks: Counter
  readonly certs: Counter<'kind'>
  readonly refused: Counter<'code'>
  readonly snapshots: Counter
  readonly ackLatency: Histogram
  /** Traffic reports (POST /v1/traffic) accepted or refused. */
  readonly trafficReports: Counter<'result'>
  /** Edges the traffic record could not keep (a bucket was full). */
  readonly trafficDropped: Counter
}

/** `outOfSync` is read at scrape time: connected sidecars whose ACKed version is not the current one. */
export function createCpMetrics(reg: Registry, outOfSync: () => number): CpMetrics {
  new Gauge({
    name: 'remora_cp_sidecars_out_of_sync',
    help: 'Connected sidecars (this replica) whose ACKed version is not the current one',
    registers: [reg],
    collect() {
      this.set(outOfSync())
    },
  })
  return {
    connected: new Gauge({ name: 'remora_cp_connected_sidecars', help: 'Sidecar streams open on this replica', registers: [reg] }),
    pushes: new Counter({ name: 'remora_cp_snapshot_pushes_total', help: 'Snapshots written to sidecar streams', registers: [reg] }),
    acks: new Counter({ name: 'remora_cp_acks_total', help: 'Snapshot ACKs received', registers: [reg] }),
    nacks: new Counter({ name: 'remora_cp_nacks_total', help: 'Snapshot NACKs received', registers: [reg] }),
    certs: new Counter({ name: 'remora_cp_certificates_issued_total', help: 'Workload certificates issued', labelNames: ['kind'], registers: [reg] }),
    refused: new Counter({ name: 'remora_cp_requests_refused_total', help: 'API requests refused, by error code', labelNames: ['code'], registers: [reg] }),
    snapshots: new Counter({ name: 'remora_cp_snapshots_published_total', help: 'New snapshot versions published', registers: [reg] }),
    ackLatency: new Histogram({ name: 'remora_cp_ack_latency_seconds', help: 'From publishing a version to each ACK of it', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [reg] }),
    trafficReports: new Counter({ name: 'remora_cp_traffic_reports_total', help: 'Traffic reports from sidecars, by result (accepted, refused)', labelNames: ['result'], registers: [reg] }),
    trafficDropped: new Counter({ name: 'remora_cp_traffic_edges_dropped_total', help: 'Traffic record edges not kept because a bucket was full', registers: [reg] }),
  }
}
