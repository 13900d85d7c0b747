// The control plane's traffic record (issue 17 item 1): sidecars' reports merged per destination
// workload and hour in the store, bounded, with a retention window, and the query the API, `remora
// graph`, `suggest` and `apply --preview` read. From proxy/ it imports only proxy/snapshot (the
// wire contract); it serves no route itself (control-plane/api does) and imports no other part but
// the store and status (the coalesced writer) types.
export { DEFAULT_TRAFFIC_RETENTION_MS, HOUR_MS, TRAFFIC_BUCKET_LIMITS, TRAFFIC_PREFIX, TrafficRecord, bucketHour, type ObservedEdge, type TrafficQuery, type TrafficQueryResult, type TrafficRecordOptions } from './record.js'
