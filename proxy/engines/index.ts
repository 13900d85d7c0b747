// The forwarding engines behind one seam: the Engine interface (front, pools, terminal, tunnels),
// the raw engine (default) and the node:http engine (fallback), and engines/common for what both
// must agree on. The sidecar picks one by name; nothing above this folder knows which runs.
import type { Engine } from './engine.js'
import { nodeHttpEngine } from './node-http/engine.js'
import { rawEngine } from './raw/engine.js'

export type { ConnectionSink, Engine, EngineFront, EnginePools, MtlsEndpoint } from './engine.js'

/** The engine named in sidecar.yaml (`engine:`) or `--engine`. */
export function engineFor(name: 'raw' | 'node-http'): Engine {
  return name === 'raw' ? rawEngine : nodeHttpEngine
}
