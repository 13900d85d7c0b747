import type { RequestContext } from '../pipeline/index.js'

// What is known about one gRPC call, kept beside its RequestContext (not in it: the context is the
// pipeline's contract). The h2 engine writes it (the call is gRPC, its messages, its status); the
// metrics stage and the access log read it. The HTTP → gRPC status mapping lives here too, because
// both sides need it: the h2 engine to answer a gRPC caller, metrics to label a call without one.

/** One gRPC call's facts. Counts are of length-prefixed messages, as Envoy's grpc_stats counts them. */
export interface GrpcFacts {
  /** Messages whose 5-byte prefix was seen in the request body (client → server). */
  requestMessages: number
  /** Messages whose 5-byte prefix was seen in the response body (server → client). */
  responseMessages: number
  /** `grpc-status` of the trailers, or of a trailers-only response's headers; null until one is seen. */
  status: number | null
}

const facts = new WeakMap<RequestContext, GrpcFacts>()

/** The facts of a gRPC call, or undefined when the request is not gRPC (every HTTP/1 request). */
export function grpcFacts(ctx: RequestContext): GrpcFacts | undefined {
  return facts.get(ctx)
}

/** Marks `ctx` as a gRPC call (the front does, from its content-type) and returns its empty facts. */
export function startGrpcCall(ctx: RequestContext): GrpcFacts {
  const f: GrpcFacts = { requestMessages: 0, responseMessages: 0, status: null }
  facts.set(ctx, f)
  return f
}

/**
 * Whether a content-type names gRPC: `application/grpc` alone or followed by `+` (a codec) or `;`
 * (parameters), as Envoy's Grpc::Common::hasGrpcContentType. `application/grpc-web` is not gRPC.
 */
export function isGrpcContentType(ct: string | undefined): boolean {
  if (ct === undefined || ct.length < 16) return false
  if (ct.slice(0, 16).toLowerCase() !== 'application/grpc') return false
  if (ct.length === 16) return true
  const c = ct.charCodeAt(16)
  return c === 43 /* + */ || c === 59 /* ; */
}

/** gRPC status codes (grpc/doc/statuscodes.md) used by the proxy. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const

/**
 * The gRPC status an HTTP status stands for, per gRPC's http-grpc-status-mapping.md (and Envoy's
 * Grpc::Utility::httpToGrpcStatus): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 * 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
 */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE
    default:
      return GRPC_STATUS.UNKNOWN
  }
}

/**
 * The `grpc_response_status` label of a gRPC call, as Istio's stats filter computes it: the status
 * from the trailers or headers; else the one its HTTP status stands for; empty when no response
 * was sent at all (`httpStatus` 0: the caller went away first).
 */
export function grpcStatusLabel(f: GrpcFacts, httpStatus: number): string {
  if (f.status !== null) return String(f.status)
  return httpStatus === 0 ? '' : String(httpToGrpcStatus(httpStatus))
}
