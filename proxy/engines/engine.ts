import type net from 'node:net'
import type { Handler, UpstreamPool } from '../pipeline/index.js'
import type { CredentialStore } from '../tls/index.js'
import type { FrontOptions } from './common/index.js'

/** The front of one listener: a server the listener binds (outbound) or hands accepted sockets to (inbound). */
export interface EngineFront extends net.Server {
  closeIdleConnections(): void
  closeAllConnections(): void
}

/** What a listener hands accepted connections to: node:http's Server, the raw engine's front and the HTTP/2 front all fit. */
export interface ConnectionSink {
  emit(event: 'connection', socket: net.Socket): boolean
  closeIdleConnections(): void
}

/** One endpoint's key: its address and the identities secure naming expects there. */
export interface MtlsEndpoint {
  readonly address: string
  readonly identities: readonly string[]
  readonly connectTimeoutMs: number
}

/** Upstream connection pools, keyed by endpoint AND the identities expected there (a reused connection never skips secure naming). */
export interface EnginePools {
  mtls(key: MtlsEndpoint, servername: string): UpstreamPool
  plain(address: string, connectTimeoutMs: number): UpstreamPool
  /** Closes pools not in `keep` (after a config swap); in-flight requests on them finish first. */
  retain(keep: ReadonlySet<UpstreamPool>): void
  stats(): { key: string; connected: number; pending: number; running: number }[]
  close(): Promise<void>
}

/**
 * A forwarding engine: everything that differs between engines, and nothing else. The stages and
 * listeners see only this and the RequestContext; what engines must agree on is engines/common.
 * docs/architecture.md#engines says how HTTP/2 and TCP engines fit as two more implementations.
 */
export interface Engine {
  readonly name: 'raw' | 'node-http'
  /** Why this engine cannot run on this runtime (a missing parser binding), or null. */
  unavailable(): string | null
  /** The front of one listener: parses requests and hands each to the current chain. */
  createFront(o: FrontOptions): EngineFront
  createPools(creds: CredentialStore): EnginePools
  /** The terminal handler: forwards a request to the route's target (streaming, upgrades through the tunnel). */
  createUpstream(): Handler
  /** Closes what left the front through an upgrade (WebSocket tunnels), on shutdown. */
  destroyTunnels(front: EngineFront): void
}
