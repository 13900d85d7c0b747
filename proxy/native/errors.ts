import { catalogError } from '../errors/index.js'

// The native addon's error catalog. Neither reaches a client: the sidecar does not start without
// the addon (exit 2, the fix in the message), and a failed read is logged and the connection routed
// without its original destination (by Host or SNI), as one that was not redirected.
export const NATIVE_ERRORS = {
  REMORA_ERR_NATIVE_ADDON_MISSING: { status: 500, message: 'cannot read original destinations' },
  REMORA_ERR_NATIVE_ORIGINAL_DST: { status: 500, message: 'cannot read the original destination of a connection' },
} as const

export type NativeErrorCode = keyof typeof NATIVE_ERRORS

export class NativeError extends catalogError(NATIVE_ERRORS) {}
