// SHARED LEAF: SPIFFE IDs (parse, format, match) and "peer certificate → identity".
// Imports nothing else from the repo; the control plane imports this index only.
export { parseSpiffeId, formatSpiffeId, isSpiffeId, type SpiffeId } from './spiffe.js'
export { peerIdentityFromCert, uriSans, type PeerIdentity, type PeerCertInput, type PeerIdentityResult } from './peer.js'
