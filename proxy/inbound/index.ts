// The inbound side (:15006): accepts mesh peers over mTLS (and plaintext where PeerAuthentication
// allows), then runs the inbound pipeline towards the local app.
export { InboundListener, type ConnectionSink, type InboundListenerOptions, type InboundTcpConnection } from './listener.js'
export { buildInboundHandler, type InboundHandlerOptions } from './pipeline.js'
