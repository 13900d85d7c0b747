// JWT request authentication (RequestAuthentication at run time): token extraction, jose
// verification with algorithms pinned from the keys, JWKS sources (inline, fetched, provided by the
// control plane) and the verified-token cache. Imports policy and pipeline types only, never stages.
export {
  createJwtAuthenticator,
  DEFAULT_LEEWAY_SECONDS,
  DEFAULT_TOKEN_CACHE_SIZE,
  MAX_TOKEN_BYTES,
  type AuthenticatedToken,
  type JwtAuthenticator,
  type JwtAuthenticatorDeps,
  type JwtAuthenticatorOptions,
  type JwtErrorCode,
  type JwtOutcome,
} from './authenticator.js'
export { VerifiedTokenCache, type VerifiedToken } from './cache.js'
export {
  createProvidedJwksSource,
  createStaticJwksSource,
  DEFAULT_JWKS_COOLDOWN_MS,
  DEFAULT_JWKS_REFRESH_MS,
  JwksRegistry,
  RemoteJwksSource,
  type JwksEvents,
  type JwksLogger,
  type JwksRegistryOptions,
  type JwksSource,
  type ProvidedJwksSource,
  type RemoteJwksDeps,
  type RemoteJwksOptions,
} from './jwks.js'
export { buildKeySet, type KeySet, type VerificationKey } from './keys.js'
export { extractTokens, removeCookie, removeParam, type TokenInput } from './token.js'
