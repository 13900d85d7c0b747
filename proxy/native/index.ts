// The sidecar's native addon (native/original_dst.cc, built by binding.gyp): a redirected
// connection's original destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), loaded lazily, once.
// Imports only the pipeline's OriginalDst type and the error factory.
export { ADDON_FILE, nativeStatus, originalDst, type NativeStatus } from './original-dst.js'
export { NATIVE_ERRORS, NativeError, type NativeErrorCode } from './errors.js'
