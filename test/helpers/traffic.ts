// Traffic-record fixtures: edges as `GET /v1/traffic` serves them, and a demo-like mesh (frontend →
// orders → payments, with denied callers), for the graph, suggest and preview tests.
import { TRAFFIC_LATENCY_BOUNDS_MS, TrafficEdgeSchema, type TrafficEdge } from '../../proxy/snapshot/index.js'
import type { ObservedEdge } from '../../control-plane/replay/index.js'

export const TD = 'cluster.local'
export const spiffe = (ns: string, sa: string): string => `spiffe://${TD}/ns/${ns}/sa/${sa}`

/** A latency histogram with `n` requests in the bucket whose upper bound is `ms` (+Inf for a bound past the last). */
export function latency(entries: readonly [ms: number, n: number][]): number[] {
  const h = new Array<number>(TRAFFIC_LATENCY_BOUNDS_MS.length + 1).fill(0)
  for (const [ms, n] of entries) {
    const i = TRAFFIC_LATENCY_BOUNDS_MS.findIndex((b) => ms <= b)
    h[i === -1 ? TRAFFIC_LATENCY_BOUNDS_MS.length : i]! += n
  }
  return h
}

export const T0 = Date.UTC(2025, 0, 15, 9, 0, 0)

/** One edge into `to` (namespace/workload), checked against the wire schema. */
export function observed(to: { namespace: string; workload: string; sa?: string }, e: Partial<TrafficEdge> & Pick<TrafficEdge, 'source'>): ObservedEdge {
  const count = e.count ?? 10
  const edge = TrafficEdgeSchema.parse({
    method: 'GET',
    path: '/',
    port: 8080,
    protocol: 'http',
    decision: 'ALLOW',
    policy: null,
    rule: null,
    mtls: e.source !== '',
    count,
    errors: 0,
    firstSeen: T0,
    lastSeen: T0 + 3_600_000,
    latency: latency([[10, count]]),
    denials: [],
    traceId: null,
    ...e,
  })
  return { destination: { principal: spiffe(to.namespace, to.sa ?? to.workload), namespace: to.namespace, workload: to.workload }, ...edge }
}

const shop = (workload: string) => ({ namespace: 'shop', workload })

/** The demo's traffic: frontend reads and creates orders, orders charges payments; batch and frontend are refused where they have no business. */
export function demoEdges(): ObservedEdge[] {
  return [
    observed(shop('frontend'), { source: '', method: 'GET', path: '/', count: 120, latency: latency([[5, 100], [25, 20]]), policy: null }),
    observed(shop('orders'), { source: spiffe('shop', 'frontend'), method: 'GET', path: '/orders', count: 300, errors: 3, policy: 'shop/orders-allow-frontend', rule: 0, latency: latency([[5, 150], [10, 120], [50, 27], [250, 3]]), traceId: 'a'.repeat(32) }),
    observed(shop('orders'), { source: spiffe('shop', 'frontend'), method: 'GET', path: '/orders/{id}', count: 200, policy: 'shop/orders-allow-frontend', rule: 0, latency: latency([[10, 200]]) }),
    observed(shop('orders'), { source: spiffe('shop', 'frontend'), method: 'POST', path: '/orders', count: 40, policy: 'shop/orders-allow-frontend', rule: 0, latency: latency([[25, 40]]) }),
    observed(shop('payments'), { source: spiffe('shop', 'orders'), method: 'POST', path: '/charge', count: 40, policy: 'shop/payments-allow-orders', rule: 0, latency: latency([[50, 38], [500, 2]]), errors: 1, traceId: 'b'.repeat(32) }),
    observed(shop('payments'), { source: spiffe('shop', 'orders'), method: '', path: '', port: 5432, protocol: 'tcp', count: 6, policy: 'shop/payments-allow-orders', rule: 1 }),
    observed(shop('payments'), {
      source: spiffe('shop', 'frontend'),
      method: 'POST',
      path: '/charge',
      count: 7,
      decision: 'DENY',
      policy: null,
      latency: latency([[1, 7]]),
      denials: [{ at: T0 + 3_500_000, reason: 'deny: no ALLOW policy matched (1 applied: shop/payments-allow-orders)' }],
      traceId: 'c'.repeat(32),
    }),
    observed(shop('orders'), {
      source: spiffe('batch', 'reporter'),
      method: 'DELETE',
      path: '/orders/{id}',
      count: 3,
      decision: 'DENY',
      policy: null,
      latency: latency([[1, 3]]),
      denials: [{ at: T0 + 3_000_000, reason: 'deny: no ALLOW policy matched (1 applied: shop/orders-allow-frontend)' }],
    }),
  ]
}

/** The demo's policies in force (what produced demoEdges' decisions). */
export const DEMO_POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }]
      to: [{ operation: { methods: ["POST"], paths: ["/charge"] } }]
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }]
      to: [{ operation: { ports: ["5432"] } }]
`
