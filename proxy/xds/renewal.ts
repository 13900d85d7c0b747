import type { Clock } from '../deps.js'

/** setTimeout/clearTimeout, injected so renewal can be driven by a test's clock. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

/** The lifetime renewal counts on: from `issuedAt` (arrival, or notBefore if later) to `notAfter`. */
export interface Lifetime {
  readonly issuedAt: number
  readonly notAfter: number
}

/**
 * Certificate renewal at a fraction of the lifetime (70 % by default, as Istio and Linkerd): one
 * attempt at a time; a failed attempt is retried after a tenth of what is left (200 ms to 10 s), so
 * a control plane that is down is asked again well before the certificate expires.
 */
export class Renewal {
  readonly #pending = new Set<unknown>()
  #running = false
  #closed = false

  constructor(
    private readonly o: {
      readonly renewAt: number
      /** One attempt; resolves with the new lifetime, rejects on failure. */
      readonly renew: () => Promise<Lifetime>
      /** The current lifetime (for the retry delay after a failure). */
      readonly current: () => Lifetime | null
      readonly onFailure: (err: Error, expiresInMs: number) => void
    },
    private readonly deps: { readonly clock: Clock; readonly timers: Timers },
  ) {}

  /** Schedules the next attempt for this lifetime (replacing none: the caller schedules once per certificate). */
  schedule(l: Lifetime): void {
    if (this.#closed) return
    const at = l.issuedAt + (l.notAfter - l.issuedAt) * this.o.renewAt
    this.#after(Math.max(0, at - this.deps.clock.now()))
  }

  #after(ms: number): void {
    const t = this.deps.timers.setTimeout(() => {
      this.#pending.delete(t)
      void this.#attempt()
    }, ms)
    this.#pending.add(t)
  }

  async #attempt(): Promise<void> {
    if (this.#closed || this.#running || !this.o.current()) return
    this.#running = true
    try {
      const next = await this.o.renew()
      this.#running = false
      this.schedule(next)
    } catch (err) {
      this.#running = false
      const cur = this.o.current()
      const left = cur ? cur.notAfter - this.deps.clock.now() : 0
      this.o.onFailure(err as Error, left)
      if (!this.#closed) this.#after(Math.max(200, Math.min(10_000, left / 10)))
    }
  }

  close(): void {
    this.#closed = true
    for (const t of this.#pending) this.deps.timers.clearTimeout(t)
    this.#pending.clear()
  }
}
