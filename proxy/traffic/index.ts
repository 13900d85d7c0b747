// The sidecar's traffic record (issue 17 item 1): what its inbound side served, aggregated into
// bounded edges from the access-log entries (a tee in front of the access-log sink), taken as
// deltas for the control-plane client to report. Imports only proxy/snapshot (the wire contract)
// the access-log entry type and the config schema; never the xds client, the listeners or control-plane/.
export { batchOf, createTrafficRecorder, trafficReport, type TrafficBatch, type TrafficDestination, type TrafficRecorder, type TrafficRecorderOptions } from './recorder.js'
export { teeAccessLog, trafficReportSettings, type TrafficReporting } from './reporting.js'
