import type { Logger } from '../deps.js'
import type { Store } from '../store/index.js'

/** Store writes that may lag: at most one in flight per key, the latest value wins. */
export interface CoalescedWriter {
  /** Queues `value` for `key` (null deletes it); a write already in flight is followed by the latest value only. */
  write(key: string, value: string | null): void
  /** Resolves when every queued write has reached the store (or failed and been logged). */
  flush(): Promise<void>
}

/**
 * The one writer for what the control plane writes on its own (status buckets, registrations):
 * a thousand ACKs in a second become one write per key in flight. Failures are logged, never
 * thrown: the running system rewrites this state.
 */
export function createCoalescedWriter(store: Store, logger: Logger): CoalescedWriter {
  const pending = new Map<string, string | null>()
  const draining = new Map<string, Promise<void>>()
  const drain = async (key: string): Promise<void> => {
    while (pending.has(key)) {
      const v = pending.get(key)!
      pending.delete(key)
      try {
        if (v === null) await store.delete(key)
        else await store.put(key, v)
      } catch (err) {
        logger.warn({ event: 'store_write_failed', key, error: (err as Error).message }, 'store write failed')
      }
    }
    draining.delete(key)
  }
  return {
    write(key, value) {
      pending.set(key, value)
      if (!draining.has(key)) draining.set(key, drain(key))
    },
    async flush() {
      while (draining.size > 0) await Promise.all(draining.values())
    },
  }
}
