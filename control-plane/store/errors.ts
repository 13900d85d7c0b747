import { RemoraError, defineErrors } from '../../proxy/errors/index.js'

// The store's error catalog: one entry per code; callers match on `err.code`. Messages name keys
// and URLs (never credentials).
export const STORE_ERRORS = {
  REMORA_ERR_STORE_BAD_KEY: { status: 400, message: 'invalid store key' },
  REMORA_ERR_STORE_URL: { status: 400, message: 'invalid or unsupported store URL' },
  REMORA_ERR_STORE_UNAVAILABLE: { status: 503, message: 'the store is unreachable' },
} as const

export type StoreErrorCode = keyof typeof STORE_ERRORS

const store = defineErrors(STORE_ERRORS)

/** The message is the caller's (it names the key or URL); the code and status come from the catalog. */
export class StoreError extends RemoraError<StoreErrorCode> {
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, STORE_ERRORS[code].status, message, options)
  }
}

/** One of the store's errors (matched on the code). */
export const isStoreError = (err: unknown): err is StoreError => store.has(err)
