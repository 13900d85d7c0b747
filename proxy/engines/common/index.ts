// What every forwarding engine must agree on, written once: the hop-by-hop and sidecar-owned header
// rules, the upstream-failure → catalog mapping, the WebSocket tunnel, address parsing and the
// read-buffer accounting. Imports only proxy/pipeline; never an engine, a stage or a listener.
export { HOP_BY_HOP, connectionNamed, isSidecarOwnedHeader, passesResponseHeader } from './headers.js'
export { upstreamFailure, type UpstreamFailure } from './upstream-errors.js'
export { splitAddress, portOf } from './address.js'
export { tunnel, TUNNEL_IDLE_MS } from './tunnel.js'
export { bodyBytesForwarded, RECLAIM_STEP_BYTES } from './read-buffers.js'
