// The store's error catalog: one entry per code; callers match on `err.code`. Messages name keys
// and URLs (never credentials).
export const STORE_ERRORS = {
  REMORA_ERR_STORE_BAD_KEY: { status: 400, message: 'invalid store key' },
  REMORA_ERR_STORE_URL: { status: 400, message: 'invalid or unsupported store URL' },
  REMORA_ERR_STORE_UNAVAILABLE: { status: 503, message: 'the store is unreachable' },
} as const satisfies Record<string, { status: number; message: string }>

export type StoreErrorCode = keyof typeof STORE_ERRORS

export class StoreError extends Error {
  readonly code: StoreErrorCode
  readonly status: number
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreError'
    this.code = code
    this.status = STORE_ERRORS[code].status
  }
}
