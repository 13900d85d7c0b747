// Push: builds the one signed, versioned snapshot (policies, clusters, jwks, trust bundle), publishes
// it when something changed (debounced for discovery) and writes it to every connected sidecar's
// stream. From proxy/ it imports only proxy/policy/index.js; never the API.
export { buildSnapshot, signSnapshot, SNAPSHOT_TYP, type SignedSnapshot, type SnapshotCluster, type SnapshotPayload } from './snapshot.js'
export { createPushHub, frame, type PushHub, type SidecarStream } from './streams.js'
export { Publisher, type ChangeKind, type PublisherOptions } from './publisher.js'
export { createPolicySetValidator, policyKey, type PolicyFeed } from './policies.js'
