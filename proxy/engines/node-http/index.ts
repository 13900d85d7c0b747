// The node:http engine (the fallback): the strict node:http server as the front of both listeners,
// undici pools upstream (mTLS with secure naming, or plain to the local app) and the terminal that
// forwards one request/response (streaming, trailers, upgrades). Builds on pipeline/ and
// engines/common; stages and listeners never import it (the Engine interface does).
export { createHttpFront, destroyUpgradedSockets, kParserError, kDispatched, MAX_PIPELINED, type FrontSocket, type HttpFrontOptions } from './server.js'
export { PoolRegistry, isConnectPhaseError, type MtlsPoolKey } from './pools.js'
export { forward, upstreamError, type ForwardOptions } from './forward.js'
export { createUpstreamHandler } from './terminal.js'
export { nodeHttpEngine } from './engine.js'
