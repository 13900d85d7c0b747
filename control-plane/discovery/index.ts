// Discovery: sidecar registrations (service, identity, labels, inbound address) → the clusters of
// every snapshot, with grace-period expiry of sidecars that are gone. Pure: no store, no clock.
export { clustersFrom, isLive, type Registration, type ReplicaHeartbeat } from './registrations.js'
