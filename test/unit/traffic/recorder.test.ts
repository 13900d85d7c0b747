// The sidecar's traffic record: inbound entries → bounded edges (templates, never raw paths), taken
// as deltas, restored within the bound when a report fails; every batch passes the wire schema.
import { describe, expect, test } from 'vitest'
import { TRAFFIC_LATENCY_BOUNDS_MS, TrafficReportSchema, type TrafficEdge } from '../../../proxy/snapshot/index.js'
import type { AccessLogEntry } from '../../../proxy/telemetry/access-log-entry.js'
import { batchOf, createTrafficRecorder, teeAccessLog, trafficReport } from '../../../proxy/traffic/index.js'

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend'
const BATCH = 'spiffe://cluster.local/ns/shop/sa/batch'
const DEST = { principal: 'spiffe://cluster.local/ns/shop/sa/orders', namespace: 'shop', workload: 'orders' }

function entry(o: Partial<AccessLogEntry> = {}): AccessLogEntry {
  return {
    start_time: '2026-01-01T00:00:00.000Z',
    direction: 'inbound',
    method: 'GET',
    authority: 'orders',
    path: '/orders',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    error_code: null,
    duration_ms: 3,
    upstream_service_time_ms: 2,
    bytes_received: 0,
    bytes_sent: 2,
    upstream_cluster: 'inbound|8080||',
    upstream_host: '127.0.0.1:8080',
    downstream_remote_address: '127.0.0.1:5000',
    downstream_peer_principal: FRONTEND,
    connection_security_policy: 'mutual_tls',
    request_id: 'r',
    authz_decision: 'ALLOW',
    authz_policy: 'shop/allow-frontend',
    authz_reason: 'allow by shop/allow-frontend rules[0]',
    authz_rule: 0,
    trace_id: null,
    span_id: null,
    ...o,
  }
}

const DENY = { response_code: 403, response_flags: 'AZ', error_code: 'REMORA_ERR_AUTHZ_DENIED', authz_decision: 'DENY', authz_policy: null, authz_rule: undefined, authz_reason: 'deny: no ALLOW policy matched (1 applied)', upstream_cluster: null } as const

function recorder(o: { maxEdges?: number; now?: () => number } = {}) {
  let t = 1_000
  const clock = { now: o.now ?? (() => t) }
  const r = createTrafficRecorder({ defaultPort: () => 8080, clock, ...(o.maxEdges !== undefined ? { maxEdges: o.maxEdges } : {}) })
  return { r, advance: (ms: number) => void (t += ms) }
}

const only = (edges: TrafficEdge[]): TrafficEdge => {
  expect(edges).toHaveLength(1)
  return edges[0]!
}

describe('traffic recorder', () => {
  test('requests of one edge aggregate: counts, first/last seen, latency buckets, mTLS, policy and rule', () => {
    const { r, advance } = recorder()
    r.record(entry({ duration_ms: 0.4 }))
    advance(500)
    r.record(entry({ duration_ms: 30 }))
    r.record(entry({ duration_ms: 20_000 }))
    const e = only(r.take().edges)
    expect(e).toMatchObject({ source: FRONTEND, method: 'GET', path: '/orders', port: 8080, protocol: 'http', decision: 'ALLOW', policy: 'shop/allow-frontend', rule: 0, mtls: true, count: 3, errors: 0, firstSeen: 1000, lastSeen: 1500, denials: [] })
    const expected = new Array(TRAFFIC_LATENCY_BOUNDS_MS.length + 1).fill(0)
    expected[0] = 1 // ≤ 1 ms
    expected[TRAFFIC_LATENCY_BOUNDS_MS.indexOf(50)] = 1
    expected[TRAFFIC_LATENCY_BOUNDS_MS.length] = 1 // +Inf
    expect(e.latency).toEqual(expected)
  })

  test('paths are recorded as templates, never raw: IDs collapse into one edge', () => {
    const { r } = recorder()
    r.record(entry({ path: '/orders/12345' }))
    r.record(entry({ path: '/orders/67890' }))
    r.record(entry({ path: '/users/alice@example.com/orders/3f2b8c1e-4a5d-4e6f-9a0b-1c2d3e4f5a6b' }))
    const b = r.take()
    expect(b.edges.map((e) => [e.path, e.count])).toEqual([
      ['/orders/{id}', 2],
      ['/users/{id}/orders/{id}', 1],
    ])
    const text = JSON.stringify(b)
    for (const raw of ['12345', '67890', 'alice', '3f2b8c1e']) expect(text).not.toContain(raw)
  })

  test('each key field makes its own edge: source, method, port, decision', () => {
    const { r } = recorder()
    r.record(entry())
    r.record(entry({ downstream_peer_principal: BATCH }))
    r.record(entry({ method: 'POST' }))
    r.record(entry({ upstream_cluster: 'inbound|9090||' }))
    r.record(entry({ ...DENY }))
    expect(r.take().edges).toHaveLength(5)
  })

  test('a denial is a DENY edge with its reason (newest kept, bounded); a denied request names the port it asked for', () => {
    const { r, advance } = recorder()
    for (let i = 0; i < 7; i++) {
      advance(10)
      r.record(entry({ ...DENY, authz_reason: `deny ${i}`, destination_port: 9090 }))
    }
    const e = only(r.take().edges)
    expect(e).toMatchObject({ decision: 'DENY', policy: null, rule: null, port: 9090, count: 7, errors: 0 })
    expect(e.denials.map((d) => d.reason)).toEqual(['deny 6', 'deny 5', 'deny 4', 'deny 3', 'deny 2'])
  })

  test('no decision: refused before authorization (bad JWT) is a DENY; served with no policy is a default ALLOW', () => {
    const { r } = recorder()
    r.record(entry({ authz_decision: null, authz_policy: null, authz_reason: null, authz_rule: undefined, response_code: 401, response_flags: 'JW', error_code: 'REMORA_ERR_JWT_INVALID', upstream_cluster: null }))
    r.record(entry({ authz_decision: null, authz_policy: null, authz_reason: null, authz_rule: undefined }))
    const [deny, allow] = r.take().edges.sort((a, b) => a.decision.localeCompare(b.decision)).reverse()
    expect(deny).toMatchObject({ decision: 'DENY', policy: null, rule: null, denials: [{ reason: 'REMORA_ERR_JWT_INVALID' }] })
    expect(allow).toMatchObject({ decision: 'ALLOW', policy: null, rule: null })
  })

  test('errors: 5xx and upstream failures, a gRPC server status; not a 404, not a denial', () => {
    const { r } = recorder()
    r.record(entry({ response_code: 503, response_flags: 'UF', error_code: 'REMORA_ERR_UPSTREAM_CONNECT' }))
    r.record(entry({ response_code: 404 }))
    r.record(entry({ protocol: 'HTTP/2.0', grpc_status: 14 }))
    r.record(entry({ protocol: 'HTTP/2.0', grpc_status: 5 }))
    const edges = r.take().edges
    expect(edges.find((e) => e.protocol === 'http')).toMatchObject({ count: 2, errors: 1 })
    expect(edges.find((e) => e.protocol === 'grpc')).toMatchObject({ count: 2, errors: 1 })
  })

  test('gRPC calls are protocol grpc; TCP connections are protocol tcp with no method or path', () => {
    const { r } = recorder()
    r.record(entry({ protocol: 'HTTP/2.0', method: 'POST', path: '/shop.Orders/Get', grpc_status: 0 }))
    r.record(entry({ protocol: 'HTTP/2.0', method: 'GET', path: '/h2' }))
    r.record(entry({ protocol: 'TCP', method: '-', path: '-', upstream_cluster: 'inbound|6379||', response_code: 0, authz_policy: null, authz_rule: undefined, authz_reason: 'allow: no ALLOW policy applies', duration_ms: 1200 }))
    r.record(entry({ protocol: 'TCP', method: '-', path: '-', upstream_cluster: 'inbound|6379||', response_code: 0, response_flags: 'UF', authz_policy: null, authz_rule: undefined }))
    const edges = r.take().edges
    expect(edges.map((e) => [e.protocol, e.method, e.path, e.port])).toEqual([
      ['grpc', 'POST', '/shop.Orders/Get', 8080],
      ['http', 'GET', '/h2', 8080],
      ['tcp', '', '', 6379],
    ])
    expect(edges[2]).toMatchObject({ count: 2, errors: 1 })
  })

  test('outbound entries are not recorded (reporter=destination)', () => {
    const { r } = recorder()
    r.record(entry({ direction: 'outbound' }))
    expect(r.take().edges).toEqual([])
  })

  test('bounded: past maxEdges new edges are counted in dropped, known edges still count', () => {
    const { r } = recorder({ maxEdges: 3 })
    for (let i = 0; i < 10; i++) r.record(entry({ path: `/p${'x'.repeat(i)}` }))
    r.record(entry({ path: '/p' }))
    expect(r.size).toBe(3)
    const b = r.take()
    expect(b.edges).toHaveLength(3)
    expect(b.edges.find((e) => e.path === '/p')!.count).toBe(2)
    expect(b.dropped).toBe(7)
  })

  test('take returns deltas: the next take starts from zero, its window from the last take', () => {
    const { r, advance } = recorder()
    r.record(entry())
    advance(100)
    const first = r.take()
    expect(first).toMatchObject({ windowStart: 1000, windowEnd: 1100, dropped: 0 })
    r.record(entry())
    advance(50)
    const second = r.take()
    expect(second.windowStart).toBe(1100)
    expect(only(second.edges).count).toBe(1)
    expect(r.take().edges).toEqual([])
  })

  test('restore merges an undelivered batch back: counts add up, the window widens, denials stay newest-first', () => {
    const { r, advance } = recorder()
    r.record(entry())
    r.record(entry({ ...DENY, authz_reason: 'old' }))
    advance(100)
    const failed = r.take()
    r.record(entry())
    advance(10)
    r.record(entry({ ...DENY, authz_reason: 'new' }))
    r.restore(failed)
    const b = r.take()
    expect(b.windowStart).toBe(1000)
    expect(b.edges.find((e) => e.decision === 'ALLOW')!.count).toBe(2)
    const deny = b.edges.find((e) => e.decision === 'DENY')!
    expect(deny.count).toBe(2)
    expect(deny.firstSeen).toBe(1000)
    expect(deny.denials.map((d) => d.reason)).toEqual(['new', 'old'])
  })

  test('restore stays within the bound: what does not fit is dropped (counted)', () => {
    const { r } = recorder({ maxEdges: 2 })
    r.record(entry({ path: '/a' }))
    r.record(entry({ path: '/b' }))
    const failed = r.take()
    r.record(entry({ path: '/c' }))
    r.record(entry({ path: '/c' }))
    r.record(entry({ path: '/d' }))
    r.restore(failed)
    const b = r.take()
    expect(b.edges.map((e) => e.path).sort()).toEqual(['/c', '/d'])
    expect(b.dropped).toBe(2)
  })

  test('every batch is a valid report; a key the contract cannot carry is dropped, not sent', () => {
    const { r } = recorder()
    r.record(entry({ trace_id: '0af7651916cd43dd8448eb211c80319c' }))
    r.record(entry({ method: 'get' })) // a lower-case h2 :method
    r.record(entry({ authz_policy: `shop/${'p'.repeat(300)}` }))
    r.record(entry({ trace_id: 'not-hex', path: '/x' }))
    const rep = trafficReport(DEST, r.take())!
    expect(TrafficReportSchema.safeParse(rep).success).toBe(true)
    expect(rep.edges).toHaveLength(2)
    expect(rep.dropped).toBe(2)
    expect(rep.edges.find((e) => e.path === '/orders')!.traceId).toBe('0af7651916cd43dd8448eb211c80319c')
    expect(rep.edges.find((e) => e.path === '/x')!.traceId).toBeNull()
    expect(batchOf(rep).edges).toBe(rep.edges)
  })

  test('nothing to report: no report', () => {
    const { r } = recorder()
    expect(trafficReport(DEST, r.take())).toBeNull()
  })

  test('the tee records, then writes the access log as before', () => {
    const { r } = recorder()
    const lines: AccessLogEntry[] = []
    const sink = teeAccessLog(r, (e) => void lines.push(e))
    sink(entry())
    expect(lines).toHaveLength(1)
    expect(r.size).toBe(1)
  })
})
