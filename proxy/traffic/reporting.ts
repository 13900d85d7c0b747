import { parseDuration, type SidecarConfig } from '../config/schema.js'
import type { AccessLogSink } from '../telemetry/access-log-entry.js'
import type { TrafficDestination, TrafficRecorder } from './recorder.js'

/** What the control-plane client needs to report a sidecar's record: who, how often, and the record. */
export interface TrafficReporting {
  readonly destination: TrafficDestination
  readonly intervalMs: number
  readonly recorder: TrafficRecorder
}

/** The sink the stages and L4 get: the record first (it never throws), then the access log as before. */
export function teeAccessLog(recorder: TrafficRecorder, sink: AccessLogSink): AccessLogSink {
  return function recordAndLog(e) {
    recorder.record(e)
    sink(e)
  }
}

/** telemetry.trafficReport as the sidecar uses it: enabled unset means "when there is a control plane". */
export function trafficReportSettings(config: Pick<SidecarConfig, 'controlPlane' | 'telemetry'>): { enabled: boolean; intervalMs: number } {
  const t = config.telemetry.trafficReport
  return { enabled: t.enabled ?? config.controlPlane !== undefined, intervalMs: parseDuration(t.interval)! }
}
