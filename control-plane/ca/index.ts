// The built-in CA: root creation/loading, CSR-based workload issuance (ECDSA P-256, SPIFFE URI SAN).
// Pure apart from crypto (no files, no network; the clock is injected). From the repo it imports
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
