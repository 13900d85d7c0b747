import type { EventEmitter } from 'node:events'
import type { Registry } from 'prom-client'
import type { Authority } from '../ca/index.js'
import type { ControlPlaneDeps } from '../deps.js'
import type { EndpointRegistry } from '../discovery/index.js'
import type { CpMetrics } from '../metrics.js'
import type { PolicyFeed, Publisher, PushHub } from '../push/index.js'
import type { StatusReport, StatusTracker } from '../status/index.js'
import type { Store } from '../store/index.js'
import type { TrafficRecord } from '../traffic/index.js'
import type { Ui } from '../ui/index.js'

/** A platform credential (Kubernetes projected service-account token) checked by TokenReview. */
export type TokenReviewer = (token: string) => Promise<{ ok: true; namespace: string; serviceAccount: string } | { ok: false; reason: string }>

/** What the routes work on: the replica's parts, wired by control-plane.ts. */
export interface ApiContext {
  readonly deps: ControlPlaneDeps
  readonly trustDomain: string
  readonly rootNamespace: string
  /** The control plane's own SPIFFE ID. */
  readonly identity: string
  readonly replicaId: string
  readonly store: Store
  readonly authority: Authority
  readonly publisher: Publisher
  readonly hub: PushHub
  readonly registry: EndpointRegistry
  readonly status: StatusTracker
  /** The traffic record: POST /v1/traffic merges into it, GET /v1/traffic reads it. */
  readonly traffic: TrafficRecord
  /** The web view's static assets (GET /ui/, no auth: they hold no data). */
  readonly ui: Ui
  readonly metrics: CpMetrics
  readonly promRegistry: Registry
  readonly events: EventEmitter
  readonly feed: PolicyFeed | undefined
  readonly tokenReviewer: TokenReviewer | undefined
  /** sha256 hex of the admin token, as the store holds it. */
  readonly adminHash: () => string | null
  readonly statusReport: () => Promise<StatusReport>
  readonly createJoinToken: (namespace: string, serviceAccount: string, ttlMs: number) => Promise<{ token: string; spiffeId: string; expiresAt: Date }>
  /** true once close() began: stream closes are then not departures. */
  readonly closing: () => boolean
}
