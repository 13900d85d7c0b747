// The sidecar's control-plane client (xDS's role): bootstrap with a join token, the signed snapshot
// stream (verify → validate with proxy/policy → swap → ACK/NACK), renewal, persisted last good
// state, and the traffic record's reports (client.ts orchestrates transport.ts, apply.ts, renewal.ts
// and traffic.ts). Never imports control-plane/: the wire contract is proxy/snapshot's, shared with
// the control plane.
export { ControlPlaneClient, type ControlPlaneClientDeps, type ControlPlaneClientOptions, type SnapshotTarget } from './client.js'
export { XDS_ERRORS, XdsError, isXdsError, type XdsErrorCode } from './errors.js'
export { checkSnapshot, verifySnapshot, importPinnedKey, SNAPSHOT_TYP, type CheckedSnapshot, type SnapshotPayload } from './snapshot.js'
export { createKeyAndCsr } from './csr.js'
export { loadState, type PersistedState } from './state.js'
export { startControlPlaneClient } from './start.js'
export { TrafficReporter, type TrafficReporterOptions, type TrafficReportResult } from './traffic.js'
