// What every forwarding engine must agree on, written once: the hop-by-hop and sidecar-owned header
// rules, the upstream-failure → catalog mapping, the WebSocket tunnel, address parsing and the
// read-buffer accounting, the request context a front builds and the front contract (limits, parser
// refusals, the answer before a request). Imports only proxy/pipeline; never an engine, a stage or a listener.
export { HOP_BY_HOP, connectionNamed, isSidecarOwnedHeader, passesResponseHeader } from './headers.js'
export { upstreamFailure, type UpstreamFailure } from './upstream-errors.js'
export { splitAddress, canonicalIp, ipv6Twin, listenDualStack, listenOn, portOf } from './address.js'
export { tunnel, TUNNEL_IDLE_MS } from './tunnel.js'
export { bodyBytesForwarded, compactHeap, RECLAIM_STEP_BYTES } from './read-buffers.js'
export { connectionInfo, createContext, setConnectionInfo, type ConnectionInfo, type ContextRequest } from './context.js'
export { DEFAULT_FRONT_LIMITS, MAX_HEADER_BYTES, parserErrorCode, rawResponse, timeoutSweepMs, type FrontLimits, type FrontOptions } from './front.js'
