// Sidecar status: what each sidecar runs (pushed/ACKed version, NACKs, certificate expiry), kept per
// replica and written to the store through one coalesced writer; read back merged over replicas
// for `remora status`. Imports the store and discovery types only; never the API or push.
export { StatusTracker, type SidecarStatus, type StatusReport, type StatusTrackerOptions } from './tracker.js'
export { createCoalescedWriter, type CoalescedWriter } from './writer.js'
