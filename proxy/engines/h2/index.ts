// The HTTP/2 engine (h2c prior knowledge from the app, ALPN h2 between sidecars, gRPC): its front
// (node:http2, one RequestContext per stream), its session pool and its terminal (trailers, gRPC
// message counts, failures → the common catalog). Builds on pipeline/, engines/common, tls/ and
// telemetry/; never imports another engine, and stages and listeners never import it.
export { createH2Front, H2_FRONT, type H2Front, type H2FrontStats } from './front.js'
export { createH2Upstream, h2ErrorName, type H2Upstream, type H2UpstreamStats } from './upstream.js'
export { H2SessionPool, H2_UPSTREAM, type H2Session } from './sessions.js'
export { H2Request, H2Response, requestHead, encodeGrpcMessage, H2_CONNECTION_SPECIFIC } from './exchange.js'
export { GrpcMessageCounter } from './grpc-frames.js'
export { grpcFacts, type GrpcFacts } from '../../telemetry/index.js'
