import diagnostics from 'node:diagnostics_channel'
import type { JwksRegistry } from '../authn/index.js'
import type { UpstreamPool } from '../pipeline/index.js'
import type { SidecarMetrics } from '../telemetry/index.js'
import type { EnginePools } from '../engines/index.js'
import type { RuntimeState } from './compile.js'

/** Every swap is published here: `{ version, previous, configured }` (CONVENTIONS.md: internal events on diagnostics_channel). */
export const SWAP_CHANNEL = 'remora:runtime:swap'
const swapChannel = diagnostics.channel(SWAP_CHANNEL)

export interface SwapEvent {
  readonly version: string
  readonly previous: string
  readonly configured: boolean
}

/**
 * The one place the sidecar's state changes. Readers take `current` once per request (the chains
 * are in it), so a swap is one assignment: requests in flight finish on the state they started
 * with. After a swap, pools and JWKS sources no longer referenced are released.
 */
export class RuntimeStore {
  #current: RuntimeState
  readonly #listeners = new Set<(e: SwapEvent) => void>()

  constructor(
    initial: RuntimeState,
    private readonly o: { readonly pools: EnginePools; readonly jwks: JwksRegistry; readonly metrics: SidecarMetrics },
  ) {
    this.#current = initial
    o.metrics.setConfigVersion(initial.version)
  }

  get current(): RuntimeState {
    return this.#current
  }

  swap(next: RuntimeState): void {
    const previous = this.#current.version
    this.#current = next
    this.o.metrics.setConfigVersion(next.version)
    this.o.jwks.retain(next.jwtRules)
    const keep = new Set<UpstreamPool>()
    for (const c of next.clusters) for (const t of c.targets) keep.add(t.dispatcher)
    for (const c of next.portClusters) for (const t of c.targets) keep.add(t.dispatcher)
    keep.add(next.app.dispatcher)
    this.o.pools.retain(keep)
    const e: SwapEvent = { version: next.version, previous, configured: next.configured }
    for (const fn of this.#listeners) fn(e)
    if (swapChannel.hasSubscribers) swapChannel.publish(e)
  }

  onSwap(fn: (e: SwapEvent) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }
}
