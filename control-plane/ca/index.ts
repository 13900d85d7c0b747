// The built-in CA: root creation/loading, CSR-based workload issuance (ECDSA P-256, SPIFFE URI SAN).
// Also the control plane's ES256 signing key and join tokens (JWT, one SPIFFE ID each). Pure apart
// from crypto (no files, no network; the clock is injected). From the repo it imports
// only proxy/identity/index.js.
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
