// The forwarding engines behind one seam: the Engine interface (front, pools, terminal, tunnels),
// the raw engine (default) and the node:http engine (fallback), and engines/common for what both
// must agree on. The sidecar picks one by name; nothing above this folder knows which runs.
import type { Engine } from './engine.js'

export type { ConnectionSink, Engine, EngineFront, EnginePools, MtlsEndpoint } from './engine.js'

/**
 * The engine named in sidecar.yaml (`engine:`) or `--engine`, loaded at start: only the chosen
 * engine's code is imported (undici comes with node-http alone, ≈ 10 MB of a raw sidecar's RSS).
 */
export async function loadEngine(name: 'raw' | 'node-http'): Promise<Engine> {
  return name === 'raw' ? (await import('./raw/engine.js')).rawEngine : (await import('./node-http/engine.js')).nodeHttpEngine
}
