// The control plane's HTTPS JSON API: the routes (sidecar routes: bootstrap, renew, stream, ACK/NACK,
// traffic reports; admin routes: apply, get, delete, sources, status, tokens, the traffic record),
// the server, the request helpers and the error catalog (CP_ERRORS). From proxy/ it imports only
// the shared leaves' index files.
export { CP_ERRORS, CpError, isCpError, type CpErrorCode } from './errors.js'
export { peerOf, peerCertExpiry, readJson, sendError, sendJson, MAX_BODY } from './http.js'
export { listenApi, route } from './server.js'
export { nodeIdOf } from './sidecar-routes.js'
export type { ApiContext, TokenReviewer } from './context.js'
