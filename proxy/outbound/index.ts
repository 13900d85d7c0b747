// The outbound side (:15001): plain HTTP from the local app (transparent or as HTTP_PROXY),
// routed by Host to a cluster and sent over mTLS with secure naming.
export { buildOutboundHandler, type OutboundHandlerOptions } from './pipeline.js'
export { OutboundListener, type OutboundListenerOptions } from './listener.js'
