// Workload credentials (own cert, key, trust bundle) and the TLS pieces built from them:
// server options for the inbound listener, secure-naming checks for upstream connections.
export { buildCredentials, CredentialError, CredentialStore, type Credentials } from './credentials.js'
export { serverTlsOptions, secureNamingCheck, SecureNamingError } from './secure-naming.js'
export { MESH_GROUPS, POST_QUANTUM, PQ_GROUP, negotiatedGroup } from '../identity/index.js'
export { MESH_ALPN, createMtlsDialer, type MtlsDialTarget } from './dial.js'
