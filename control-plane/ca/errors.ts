import { catalogError } from '../../proxy/errors/index.js'

// The CA's error catalog: one entry per code, callers match on `err.code`. Messages carry SPIFFE
// IDs and trust domains at most, never PEMs or keys.
export const CA_ERRORS = {
  REMORA_ERR_CA_CSR_INVALID: { status: 400, message: 'the certificate signing request is invalid' },
  REMORA_ERR_CA_CSR_IDENTITY_MISMATCH: { status: 403, message: 'the CSR does not request exactly the identity being issued' },
  REMORA_ERR_CA_BAD_SPIFFE_ID: { status: 400, message: 'not a valid workload SPIFFE ID' },
  REMORA_ERR_CA_TRUST_DOMAIN: { status: 403, message: 'the SPIFFE ID is outside the CA trust domain' },
  REMORA_ERR_CA_ROOT_INVALID: { status: 500, message: 'the root CA certificate or key is unusable' },
} as const

export type CaErrorCode = keyof typeof CA_ERRORS

export class CaError extends catalogError(CA_ERRORS) {}

/** One of the CA's errors (matched on the code). */
export const isCaError = (err: unknown): err is CaError => CaError.is(err)
