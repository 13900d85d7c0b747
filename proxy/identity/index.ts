// SHARED LEAF: SPIFFE IDs (parse, format, match), "peer certificate → identity", and the TLS groups mesh identities are exchanged with.
// Imports nothing else from the repo; the control plane imports this index only.
export { parseSpiffeId, formatSpiffeId, isSpiffeId, type SpiffeId } from './spiffe.js'
export { peerIdentityFromCert, uriSans, type PeerIdentity, type PeerCertInput, type PeerIdentityResult } from './peer.js'
// The mesh's TLS key-exchange groups (post-quantum first where OpenSSL has it), shared by the
// sidecar's mTLS and the control plane's API so both ends offer the same list.
export { MESH_GROUPS, POST_QUANTUM, PQ_GROUP, negotiatedGroup, opensslHasMlKem } from './tls-groups.js'
