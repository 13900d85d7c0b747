import { createRequire } from 'node:module'
import type * as UndiciModule from 'undici'
import type { Agent, Dispatcher } from 'undici'
import type { CompiledJwtRule } from '../policy/index.js'
import { buildKeySet, type KeySet } from './keys.js'

/**
 * Where a jwtRule's keys come from. The authenticator only reads `current()` on the hot path and
 * calls `refresh()` when a token names a kid it does not know or when there are no keys yet.
 * Implementations: inline keys (createStaticJwksSource), keys fetched from a jwksUri
 * (RemoteJwksSource), keys handed over by the control plane in snapshots (createProvidedJwksSource).
 */
export interface JwksSource {
  /** The keys to verify with now, or null when none were ever obtained. Synchronous and cheap. */
  current(): KeySet | null
  /** Try to get newer keys (at most one fetch per cooldown, shared by concurrent callers); resolves to current(). */
  refresh(reason: 'unknown-kid' | 'no-keys'): Promise<KeySet | null>
  /** Safe to show in logs and config dumps: `inline`, `provided`, or the jwksUri. */
  readonly description: string
}

export interface JwksLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

export interface JwksEvents {
  /** One per fetch attempt (metric hook). */
  onFetch?(uri: string, outcome: 'ok' | 'error'): void
}

type Undici = typeof UndiciModule
let undici: Undici | null = null
/**
 * undici, loaded when the first jwksUri source is built (compile time, synchronously: a broken
 * install fails the compile, never a request): a sidecar without one never pays for its ≈ 10 MB.
 */
function loadUndici(): Undici {
  return (undici ??= createRequire(import.meta.url)('undici') as Undici)
}

/** Inline keys: fixed for the life of the snapshot. */
export function createStaticJwksSource(jwks: unknown, description = 'inline'): JwksSource {
  const { set } = buildKeySet(jwks)
  const cur = set.keys.length > 0 ? set : null
  return { description, current: () => cur, refresh: async () => cur }
}

/**
 * Keys pushed from outside (the control plane fetches each issuer's JWKS once and ships the keys
 * in its snapshots, so sidecars never hit the issuer). `update()` swaps the set; an identical set
 * keeps its object, so verified-token cache entries stay valid.
 */
export interface ProvidedJwksSource extends JwksSource {
  update(jwks: unknown): void
}

export function createProvidedJwksSource(description = 'provided'): ProvidedJwksSource {
  let cur: KeySet | null = null
  return {
    description,
    current: () => cur,
    refresh: async () => cur,
    update(jwks) {
      const { set } = buildKeySet(jwks)
      if (set.keys.length === 0) return // an empty push never erases good keys
      if (cur === null || cur.fingerprint !== set.fingerprint) cur = set
    },
  }
}

export interface RemoteJwksOptions {
  readonly uri: string
  readonly timeoutMs: number
  /** Refetch period while things are fine. Default 10 min. */
  readonly refreshIntervalMs?: number
  /** At most one fetch per cooldown on unknown kids or failures. Default 30 s. */
  readonly cooldownMs?: number
  /** Largest accepted JWKS document. Default 512 KiB. */
  readonly maxBytes?: number
  readonly dispatcher: Dispatcher
}

export interface RemoteJwksDeps {
  readonly clock: { now(): number }
  readonly logger: JwksLogger
  readonly events?: JwksEvents
}

export const DEFAULT_JWKS_REFRESH_MS = 10 * 60_000
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000

/**
 * Keys fetched from a jwksUri: fetched at once, refreshed on an interval, refetched at most once
 * per cooldown when a token names an unknown kid (rotation without restart), and the last good set
 * kept while the endpoint is down. Never follows redirects (a 3xx is a failed fetch).
 */
export class RemoteJwksSource implements JwksSource {
  readonly description: string
  #cur: KeySet | null = null
  #inflight: Promise<KeySet | null> | null = null
  #lastAttempt = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | null = null
  #failures = 0
  #closed = false
  readonly #o: Required<Omit<RemoteJwksOptions, 'dispatcher'>> & { dispatcher: Dispatcher }

  constructor(
    o: RemoteJwksOptions,
    private readonly deps: RemoteJwksDeps,
  ) {
    this.description = o.uri
    this.#o = {
      uri: o.uri,
      timeoutMs: o.timeoutMs,
      dispatcher: o.dispatcher,
      refreshIntervalMs: o.refreshIntervalMs ?? DEFAULT_JWKS_REFRESH_MS,
      cooldownMs: o.cooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS,
      maxBytes: o.maxBytes ?? 512 * 1024,
    }
  }

  /** Starts the first fetch (not awaited: a request that needs keys waits for it). */
  start(): this {
    void this.#fetch()
    return this
  }

  current(): KeySet | null {
    return this.#cur
  }

  /** Resolves when the fetch under way (if any) is done: tests and start-up use it. */
  async settled(): Promise<KeySet | null> {
    return this.#inflight ?? this.#cur
  }

  refresh(): Promise<KeySet | null> {
    if (this.#inflight) return this.#inflight
    if (this.deps.clock.now() - this.#lastAttempt < this.#o.cooldownMs) return Promise.resolve(this.#cur)
    return this.#fetch()
  }

  #fetch(): Promise<KeySet | null> {
    if (this.#closed) return Promise.resolve(this.#cur)
    this.#lastAttempt = this.deps.clock.now()
    const p = this.#load().finally(() => {
      this.#inflight = null
      // The cooldown counts from the end of an attempt: an endpoint that hangs until the timeout
      // is not asked again at once (with timeout ≥ cooldown it was, back to back, and every token
      // with an unknown kid, which anyone can mint, waited the whole timeout).
      this.#lastAttempt = this.deps.clock.now()
    })
    this.#inflight = p
    return p
  }

  async #load(): Promise<KeySet | null> {
    const { uri } = this.#o
    try {
      const doc = await this.#get()
      const { set, skipped } = buildKeySet(doc)
      for (const s of skipped) this.deps.logger.warn({ event: 'jwks_key_skipped', jwksUri: uri, index: s.index, kid: s.kid, reason: s.reason }, 'JWKS key skipped')
      if (set.keys.length === 0) throw new Error('no usable signing key in the set')
      const changed = this.#cur === null || this.#cur.fingerprint !== set.fingerprint
      if (changed) {
        this.#cur = set
        this.deps.logger.info({ event: 'jwks_fetched', jwksUri: uri, kids: set.kids, keys: set.keys.length }, 'JWKS fetched')
      }
      this.#failures = 0
      this.deps.events?.onFetch?.(uri, 'ok')
      this.#schedule(this.#o.refreshIntervalMs)
    } catch (err) {
      this.#failures++
      this.deps.events?.onFetch?.(uri, 'error')
      const reason = err instanceof Error ? err.message : String(err)
      this.deps.logger.warn(
        { event: 'jwks_fetch_failed', jwksUri: uri, reason, keeping: this.#cur ? this.#cur.kids : null },
        this.#cur ? 'JWKS fetch failed; keeping the last good key set' : 'JWKS fetch failed; no key yet: tokens of this issuer are refused',
      )
      this.#schedule(Math.min(this.#o.cooldownMs * 2 ** Math.min(this.#failures - 1, 6), this.#o.refreshIntervalMs))
    }
    return this.#cur
  }

  async #get(): Promise<unknown> {
    const { uri, timeoutMs, maxBytes, dispatcher } = this.#o
    const signal = AbortSignal.timeout(timeoutMs)
    const res = await loadUndici().request(uri, { method: 'GET', dispatcher, signal, headers: { accept: 'application/json, application/jwk-set+json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`HTTP ${res.statusCode}`)
    }
    const chunks: Buffer[] = []
    let n = 0
    for await (const c of res.body as AsyncIterable<Buffer>) {
      n += c.length
      if (n > maxBytes) {
        res.body.destroy()
        throw new Error(`JWKS larger than ${maxBytes} bytes`)
      }
      chunks.push(c)
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      throw new Error('JWKS is not JSON')
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.#fetch(), ms)
    this.#timer.unref()
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    await this.#inflight?.catch(() => null)
  }
}

export interface JwksRegistryOptions {
  readonly refreshIntervalMs?: number
  readonly cooldownMs?: number
  /** Extra trust anchors (PEM) for https jwksUris, on top of the system's. */
  readonly ca?: string
  /**
   * The control-plane seam: a source for a jwksUri that replaces fetching (keys shipped in
   * snapshots). Returning undefined falls back to fetching.
   */
  readonly provided?: (uri: string) => JwksSource | undefined
}

/**
 * Owns the JWKS sources of one sidecar across snapshots: a jwksUri is fetched by one source however
 * many rules or snapshots name it; `retain()` after a swap closes the ones no rule uses any more.
 */
export class JwksRegistry {
  readonly #remote = new Map<string, RemoteJwksSource>()
  readonly #inline = new Map<string, JwksSource>()
  #dispatcher: Agent | null = null

  constructor(
    private readonly opts: JwksRegistryOptions,
    private readonly deps: RemoteJwksDeps,
  ) {}

  sourceFor(rule: CompiledJwtRule): JwksSource {
    if (rule.jwks) {
      const k = JSON.stringify(rule.jwks)
      let s = this.#inline.get(k)
      if (!s) this.#inline.set(k, (s = createStaticJwksSource(rule.jwks)))
      return s
    }
    const uri = rule.jwksUri!
    const provided = this.opts.provided?.(uri)
    if (provided) return provided
    let s = this.#remote.get(uri)
    if (!s) {
      this.#dispatcher ??= new (loadUndici().Agent)({ connect: { ...(this.opts.ca ? { ca: this.opts.ca } : {}), timeout: 5000 }, keepAliveTimeout: 30_000 })
      s = new RemoteJwksSource(
        { uri, timeoutMs: rule.timeoutMs, refreshIntervalMs: this.opts.refreshIntervalMs, cooldownMs: this.opts.cooldownMs, dispatcher: this.#dispatcher },
        this.deps,
      ).start()
      this.#remote.set(uri, s)
    }
    return s
  }

  /** Close the fetched sources that none of `rules` uses; forget unused inline sets. */
  retain(rules: readonly CompiledJwtRule[]): void {
    const uris = new Set(rules.map((r) => r.jwksUri).filter((u): u is string => u !== null))
    for (const [uri, s] of this.#remote) {
      if (!uris.has(uri)) {
        this.#remote.delete(uri)
        void s.close()
      }
    }
    const inline = new Set(rules.filter((r) => r.jwks).map((r) => JSON.stringify(r.jwks)))
    for (const k of this.#inline.keys()) if (!inline.has(k)) this.#inline.delete(k)
  }

  /** jwksUri → kids currently held (config dumps: never key material). */
  status(): { jwksUri: string; kids: readonly string[] | null }[] {
    return [...this.#remote].map(([jwksUri, s]) => ({ jwksUri, kids: s.current()?.kids ?? null }))
  }

  async close(): Promise<void> {
    await Promise.all([...this.#remote.values()].map((s) => s.close()))
    this.#remote.clear()
    await this.#dispatcher?.close()
    this.#dispatcher = null
  }
}
