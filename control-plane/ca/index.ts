// The built-in CA: root creation/loading, CSR-based workload issuance (ECDSA P-256, SPIFFE URI SAN),
// the control plane's ES256 signing key and join tokens (JWT, one SPIFFE ID each): pure apart from
// crypto, the clock injected. authority.ts keeps that material in the store and owns the serving
// certificate. From proxy/ it imports only proxy/identity/index.js; never the API or push.
export {
  createRootCa,
  loadRootCa,
  generateKeyPair,
  createCsr,
  issueFromCsr,
  issueWorkloadCert,
  systemClock,
  DEFAULT_LEAF_TTL_MS,
  DEFAULT_ROOT_VALIDITY_MS,
  BACKDATE_MS,
  type Clock,
  type RootCa,
  type IssuedCert,
} from './ca.js'
export { CaError, CA_ERRORS, isCaError, type CaErrorCode } from './errors.js'
export {
  createJoinToken,
  generateSigningKey,
  importSigningKey,
  verifyJoinToken,
  JOIN_TOKEN_AUDIENCE,
  JOIN_TOKEN_ISSUER,
  JOIN_TOKEN_TYP,
  SIGNING_ALG,
  type JoinTokenClaims,
  type JoinTokenRefusal,
  type SigningKey,
} from './tokens.js'
export { Authority, type AuthorityOptions } from './authority.js'
