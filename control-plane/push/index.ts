// Push: builds the one signed, versioned snapshot (policies, clusters, jwks, trust bundle) and
// writes it to every connected sidecar's stream. From proxy/ it imports only proxy/policy/index.js.
export { buildSnapshot, signSnapshot, SNAPSHOT_TYP, type SignedSnapshot, type SnapshotCluster, type SnapshotPayload } from './snapshot.js'
export { createPushHub, frame, type PushHub, type SidecarStream } from './streams.js'
