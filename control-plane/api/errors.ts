import { catalogError } from '../../proxy/errors/index.js'

// The control-plane API's error catalog: a stable code, the HTTP status and the message. Bodies are
// `{ "error": { "code", "message" } }`; messages name SPIFFE IDs and versions, never tokens or PEMs.
export const CP_ERRORS = {
  REMORA_ERR_CP_UNAUTHENTICATED: { status: 401, message: 'admin credential missing or wrong' },
  REMORA_ERR_CP_CLIENT_CERT_REQUIRED: { status: 401, message: 'a workload certificate issued by this control plane is required' },
  REMORA_ERR_CP_TOKEN_INVALID: { status: 401, message: 'join token refused' },
  REMORA_ERR_CP_TOKEN_EXPIRED: { status: 401, message: 'join token expired' },
  REMORA_ERR_CP_NODE_MISMATCH: { status: 403, message: 'this sidecar stream belongs to another identity' },
  REMORA_ERR_CP_BAD_REQUEST: { status: 400, message: 'invalid request' },
  REMORA_ERR_CP_POLICY_INVALID: { status: 422, message: 'the policies are invalid; nothing was stored' },
  REMORA_ERR_CP_NOT_FOUND: { status: 404, message: 'not found' },
  REMORA_ERR_CP_POLICY_READ_ONLY: { status: 409, message: 'policies are not managed through this API' },
  REMORA_ERR_CP_QUARANTINED: { status: 403, message: 'this workload identity is quarantined' },
  REMORA_ERR_CP_TRAFFIC_FOREIGN: { status: 403, message: 'a sidecar reports only its own traffic: the report names another workload than its certificate' },
  REMORA_ERR_CP_INTERNAL: { status: 500, message: 'internal control-plane error' },
} as const

export type CpErrorCode = keyof typeof CP_ERRORS

/** `extra` is merged into the error body (e.g. the validation issues of a refused apply). */
export class CpError extends catalogError(CP_ERRORS) {
  constructor(
    code: CpErrorCode,
    readonly detail?: string,
    readonly extra?: Record<string, unknown>,
  ) {
    super(code, detail)
  }
}

/** One of the API's errors (matched on the code). */
export const isCpError = (err: unknown): err is CpError => CpError.is(err)
