import type { Engine, EnginePools } from '../engine.js'
import { createRawFront } from './front.js'
import { rawEngineUnavailable } from './llhttp.js'
import { RawPoolRegistry } from './pool.js'
import { createRawUpstreamHandler } from './upstream.js'

/** The framing-only engine (the default): llhttp finds message boundaries on raw sockets, bodies pass through. */
export const rawEngine: Engine = {
  name: 'raw',
  unavailable: rawEngineUnavailable,
  createFront: (o) => createRawFront(o),
  createPools: (creds) => new RawPoolRegistry(creds) as EnginePools,
  createUpstream: createRawUpstreamHandler,
  // Its tunnels are the downstream connections themselves: closeAllConnections() ends them.
  destroyTunnels: () => {},
}
