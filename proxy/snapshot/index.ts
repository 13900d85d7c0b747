// SHARED LEAF: the snapshot contract both sides use, written once: the wire schema (payload and
// clusters), `typ`, the pinned algorithm, signing and verification, and the checks a sidecar runs
// before a swap (the policy duplicate check included). Imports only proxy/policy/index.js from the
// repo; the control plane imports this index.
export { ClusterPortSchema, ClusterSchema, QuarantineEntrySchema, type QuarantineEntry, OUTBOUND_POLICY_MODES, OutboundTrafficPolicySchema, type OutboundTrafficPolicy, durationSchema, hostPortSchema, formatPath, parseDuration, parseHostPort, type ClusterConfig, type ClusterPort, type SnapshotCluster } from './clusters.js'
export { PORT_PROTOCOLS, SERVER_FIRST_PORTS, declaredProtocol, type PortProtocol } from './protocols.js'
export {
  MAX_SNAPSHOT_BYTES,
  SNAPSHOT_ALG,
  SNAPSHOT_TYP,
  SnapshotPayloadSchema,
  checkSnapshot,
  importPinnedKey,
  policyId,
  signSnapshotPayload,
  verifySnapshotJws,
  type CheckedSnapshot,
  type SnapshotPayload,
  type SnapshotRefusal,
  type SnapshotResult,
} from './contract.js'
export {
  TRAFFIC_LATENCY_BOUNDS_MS,
  TRAFFIC_LIMITS,
  TRAFFIC_PROTOCOLS,
  TrafficEdgeSchema,
  TrafficReportSchema,
  edgeKey,
  mergeEdge,
  pathTemplate,
  type TrafficEdge,
  type TrafficReport,
} from './traffic.js'
