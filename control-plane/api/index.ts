// The control plane's HTTPS JSON API pieces: the error catalog (CP_ERRORS) and the request helpers
// (JSON bodies, the caller's SPIFFE ID from its client certificate). From proxy/ it imports only
// proxy/identity/index.js.
export { CP_ERRORS, CpError, type CpErrorCode } from './errors.js'
export { peerOf, peerCertExpiry, readJson, sendError, sendJson, MAX_BODY } from './http.js'
