import type { JwksRegistryOptions, JwtOutcome } from '../authn/index.js'
import { parseDuration, type SidecarConfig } from '../config/schema.js'

export interface SidecarJwtOptions {
  /** exp/nbf clock skew in seconds; default config.jwt.leeway (60s). */
  readonly leewaySeconds?: number
  /** Verified tokens kept per snapshot (LRU); default config.jwt.cacheSize (4096), 0 = off. */
  readonly cacheSize?: number
  /**
   * Refresh interval, cooldown (default config.jwt.jwksRefresh / jwksCooldown), extra CAs, and
   * `provided`: keys shipped by the control plane instead of fetched.
   */
  readonly jwks?: JwksRegistryOptions
  /** Every JWT outcome (metric hook: remora_jwt_results_total{result,code}); must not throw. */
  readonly onResult?: (outcome: JwtOutcome) => void
  /** Every JWKS fetch attempt (metric hook); must not throw. */
  readonly onJwksFetch?: (jwksUri: string, outcome: 'ok' | 'error') => void
}

/** The JWT settings a sidecar runs with, in the units the authenticator and JWKS sources take. */
export interface EffectiveJwtSettings {
  readonly leewaySeconds: number
  readonly cacheSize: number
  readonly jwksRefreshMs: number
  readonly jwksCooldownMs: number
}

/** config.jwt (already validated: the durations parse), with each field of `over` that is set winning. */
export function effectiveJwtSettings(c: SidecarConfig, over: SidecarJwtOptions | undefined): EffectiveJwtSettings {
  return {
    leewaySeconds: over?.leewaySeconds ?? parseDuration(c.jwt.leeway)! / 1000,
    cacheSize: over?.cacheSize ?? c.jwt.cacheSize,
    jwksRefreshMs: over?.jwks?.refreshIntervalMs ?? parseDuration(c.jwt.jwksRefresh)!,
    jwksCooldownMs: over?.jwks?.cooldownMs ?? parseDuration(c.jwt.jwksCooldown)!,
  }
}
