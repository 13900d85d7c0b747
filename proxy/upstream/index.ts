// Upstream side of the proxy: connection pools (mTLS with secure naming, or plain to the local
// app) and the forwarding of one request/response (streaming, trailers, upgrades).
export { PoolRegistry, isConnectPhaseError, type MtlsPoolKey } from './pools.js'
export { forward, type ForwardOptions } from './forward.js'
