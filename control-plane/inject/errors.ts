import { catalogError } from '../../proxy/errors/index.js'

// Injection's error catalog: one entry per code, callers match on `err.code`. The webhook answers
// an AdmissionReview with `allowed: false` and the code's status; `remora inject` exits 2.
export const INJECT_ERRORS = {
  REMORA_ERR_INJECT_APP_PORT: {
    status: 400,
    message: "an app port is one of the sidecar's own ports",
  },
  REMORA_ERR_INJECT_BAD_ANNOTATION: { status: 400, message: 'invalid remora.dev annotation' },
  REMORA_ERR_INJECT_BAD_DOCUMENT: { status: 400, message: 'not a Kubernetes object that can be injected' },
  REMORA_ERR_INJECT_BAD_REVIEW: { status: 400, message: 'not an admission.k8s.io/v1 AdmissionReview request' },
  REMORA_ERR_INJECT_CONFIG: { status: 500, message: 'invalid injection configuration' },
} as const

export type InjectErrorCode = keyof typeof INJECT_ERRORS

export class InjectError extends catalogError(INJECT_ERRORS) {
  /** The same error with the object it happened in named first (`StatefulSet ledger: …`). */
  within(where: string): InjectError {
    const e = new InjectError(this.code)
    e.message = `${where}: ${this.message}`
    return e
  }
}

/** One of injection's errors (matched on the code). */
export const isInjectError = (err: unknown): err is InjectError => InjectError.is(err)
