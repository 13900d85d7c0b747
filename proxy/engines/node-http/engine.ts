import type { Engine, EngineFront, EnginePools } from '../engine.js'
import { PoolRegistry } from './pools.js'
import { createHttpFront, destroyUpgradedSockets } from './server.js'
import { createUpstreamHandler } from './terminal.js'

/** The node:http engine (the fallback): node:http's server in front, undici pools upstream. */
export const nodeHttpEngine: Engine = {
  name: 'node-http',
  unavailable: () => null,
  createFront: (o) => createHttpFront(o) as unknown as EngineFront,
  createPools: (creds) => new PoolRegistry(creds) as unknown as EnginePools,
  createUpstream: createUpstreamHandler,
  destroyTunnels: (front) => destroyUpgradedSockets(front),
}
