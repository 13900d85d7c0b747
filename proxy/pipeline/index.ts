// The request pipeline: Stage/Handler types, compose(), the RequestContext every stage sees,
// response flags, the proxy's error catalog and the response rules (responseExtras). Imports nothing from other proxy modules
// except the shared leaves (policy, identity, errors).
export * from './types.js'
export { compose } from './compose.js'
export { FLAGS, type ResponseFlag } from './flags.js'
export { ProxyError, PROXY_ERRORS, isProxyError, proxyError, type ProxyErrorCode, type ProxyErrorDef } from './errors.js'
export { proxyResponseHead, responseExtras, sendProxyResponse } from './respond.js'
