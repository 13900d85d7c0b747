import { catalogError } from '../errors/index.js'

// The native addon's error catalog. Neither reaches a client: the listeners log them and route the
// connection without its original destination (by Host or SNI), as they do for one not redirected.
export const NATIVE_ERRORS = {
  REMORA_ERR_NATIVE_ADDON_MISSING: { status: 500, message: 'the native addon is not loaded' },
  REMORA_ERR_NATIVE_ORIGINAL_DST: { status: 500, message: 'cannot read the original destination of a connection' },
} as const

export type NativeErrorCode = keyof typeof NATIVE_ERRORS

export class NativeError extends catalogError(NATIVE_ERRORS) {}
