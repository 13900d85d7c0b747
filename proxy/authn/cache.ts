import type { RequestAuth } from '../policy/index.js'
import type { KeySet } from './keys.js'

/** What a verified token proved; reused while the token and its key set are still good. */
export interface VerifiedToken {
  readonly auth: RequestAuth
  /** The payload segment as received (base64url), for outputPayloadToHeader. */
  readonly payloadSegment: string
  /** Index of the jwtRule that verified it. */
  readonly rule: number
  /** The key set it was verified with: an entry is void once its source hands out another set. */
  readonly keys: KeySet
  /** Seconds since epoch from which the token no longer verifies (exp + leeway); Infinity without exp. */
  readonly validUntil: number
  /** ms since epoch after which the entry is dropped even without exp. */
  readonly cachedUntil: number
}

/**
 * A bounded LRU of verified tokens keyed by the token's SHA-256 (never the token). Map insertion
 * order is the recency order: a hit moves the entry to the end, the oldest is evicted first.
 */
export class VerifiedTokenCache {
  readonly #max: number
  readonly #map = new Map<string, VerifiedToken>()
  hits = 0
  misses = 0

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new TypeError('VerifiedTokenCache: maxEntries must be an integer ≥ 0')
    this.#max = maxEntries
  }

  get size(): number {
    return this.#map.size
  }

  /** The entry if it is still good at `nowMs`; an expired entry is removed. */
  get(hash: string, nowMs: number): VerifiedToken | undefined {
    const e = this.#map.get(hash)
    if (e === undefined) {
      this.misses++
      return undefined
    }
    if (Math.floor(nowMs / 1000) >= e.validUntil || nowMs >= e.cachedUntil) {
      this.#map.delete(hash)
      this.misses++
      return undefined
    }
    this.#map.delete(hash)
    this.#map.set(hash, e)
    this.hits++
    return e
  }

  set(hash: string, e: VerifiedToken): void {
    if (this.#max === 0) return
    this.#map.delete(hash)
    this.#map.set(hash, e)
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!)
  }

  delete(hash: string): void {
    this.#map.delete(hash)
  }
}
