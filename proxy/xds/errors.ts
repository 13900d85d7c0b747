import { RemoraError, defineErrors } from '../errors/index.js'

// The control-plane client's error catalog. A snapshot refused for one of these reasons is NACKed
// with the code in its error lines and the last good snapshot stays; messages never carry a token,
// a key or a PEM.
export const XDS_ERRORS = {
  REMORA_ERR_XDS_SIGNATURE: { status: 400, message: 'snapshot signature does not verify with the pinned control-plane key' },
  REMORA_ERR_XDS_SNAPSHOT_INVALID: { status: 400, message: 'snapshot is not a valid remora snapshot' },
  REMORA_ERR_XDS_POLICY_INVALID: { status: 400, message: 'snapshot policies do not validate' },
  REMORA_ERR_XDS_CREDENTIALS: { status: 400, message: 'issued certificate or trust bundle unusable' },
  REMORA_ERR_XDS_BOOTSTRAP_REFUSED: { status: 401, message: 'the control plane refused the join token or the CSR' },
  REMORA_ERR_XDS_NO_TOKEN: { status: 401, message: 'no join token (controlPlane.tokenFile or the tokenEnv variable) and no usable persisted certificate' },
} as const

export type XdsErrorCode = keyof typeof XDS_ERRORS

const xds = defineErrors(XDS_ERRORS)

export class XdsError extends RemoraError<XdsErrorCode> {
  constructor(
    code: XdsErrorCode,
    readonly details: readonly string[] = [],
  ) {
    super(code, XDS_ERRORS[code].status, xds.message(code, details.length ? details.join('; ') : undefined))
  }
  /** NACK lines: one per problem, each ending with the code. */
  lines(): string[] {
    return this.details.length ? this.details.map((d) => `${d} (${this.code})`) : [`${XDS_ERRORS[this.code].message} (${this.code})`]
  }
}

/** One of the client's errors (matched on the code). */
export const isXdsError = (err: unknown): err is XdsError => xds.has(err)
