// metrics: a real SidecarMetrics (proxy/telemetry) behind the stage, read back from its registry's
// Prometheus text: istio_requests_total with the labels each reporter writes, the final response
// code and flags, and remora_authz_decisions_total.
import { describe, expect, test } from 'vitest'
import { proxyError, type Direction, type RequestContext } from '../../../proxy/pipeline/index.js'
import type { Decision } from '../../../proxy/policy/index.js'
import { SidecarMetrics } from '../../../proxy/telemetry/metrics.js'
import { createMetricsStage, type WorkloadLabels } from '../../../proxy/stages/index.js'
import { BATCH, FRONTEND, peer, sanitizedContext, type RequestOptions } from './context.js'

const ORDERS: WorkloadLabels = { workload: 'orders', namespace: 'shop', principal: 'spiffe://cluster.local/ns/shop/sa/orders', app: 'orders', service: 'orders.shop.svc.cluster.local', serviceName: 'orders' }
const PAYMENTS: WorkloadLabels = { workload: 'payments', namespace: 'shop', principal: 'spiffe://cluster.local/ns/shop/sa/payments', app: 'payments', service: 'payments.shop.svc.cluster.local', serviceName: 'payments' }
const PAYMENTS_CLUSTER = 'outbound|9090||payments.shop'

/** The value of one series: the sample whose labels include all of `labels` (the sum if several do). */
async function metric(m: SidecarMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await m.registry.metrics()
  let sum = 0
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const have = new Map([...(match[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]))
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(match[3])
  }
  return sum
}

function setup(direction: Direction) {
  const m = new SidecarMetrics({ processMetrics: false })
  const build = createMetricsStage({ metrics: m, direction, self: direction === 'inbound' ? ORDERS : { ...ORDERS, service: 'unknown', serviceName: 'unknown' }, clusters: new Map([[PAYMENTS_CLUSTER, PAYMENTS]]) })
  return { m, build }
}

const respond = (status: number, over: Partial<RequestContext> = {}) => async (ctx: RequestContext) => {
  ctx.res.writeHead(status, {})
  Object.assign(ctx, over)
}

async function one(direction: Direction, o: RequestOptions, handler: (ctx: RequestContext) => Promise<void>) {
  const s = setup(direction)
  await s.build(handler)(sanitizedContext({ direction, ...o })).catch(() => {})
  return s.m
}

describe('metrics: istio_requests_total', () => {
  test('inbound (reporter=destination): the source from the verified peer, the destination is this workload', async () => {
    const m = await one('inbound', { peer: peer(FRONTEND) }, respond(200))
    expect(await metric(m, 'istio_requests_total', {
      reporter: 'destination',
      source_workload: 'frontend',
      source_workload_namespace: 'web',
      source_principal: FRONTEND,
      source_app: 'frontend',
      destination_workload: 'orders',
      destination_workload_namespace: 'shop',
      destination_principal: ORDERS.principal,
      destination_service: 'orders.shop.svc.cluster.local',
      destination_service_name: 'orders',
      request_protocol: 'http',
      response_code: '200',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    })).toBe(1)
  })

  test('inbound plaintext: the source is unknown and the security policy none', async () => {
    const m = await one('inbound', { peer: null }, respond(200))
    expect(await metric(m, 'istio_requests_total', { reporter: 'destination', source_workload: 'unknown', source_principal: 'unknown', connection_security_policy: 'none' })).toBe(1)
    expect(await metric(m, 'istio_requests_total', { connection_security_policy: 'mutual_tls' })).toBe(0)
  })

  test('outbound (reporter=source): the source is this workload, the destination comes from the cluster', async () => {
    const m = await one('outbound', {}, respond(201, { cluster: PAYMENTS_CLUSTER }))
    expect(await metric(m, 'istio_requests_total', {
      reporter: 'source',
      source_workload: 'orders',
      destination_workload: 'payments',
      destination_service: 'payments.shop.svc.cluster.local',
      response_code: '201',
      connection_security_policy: 'mutual_tls',
    })).toBe(1)
  })

  test('outbound with no cluster chosen (NR): the destination is unknown', async () => {
    const m = await one('outbound', {}, respond(404, { flags: ['NR'] }))
    expect(await metric(m, 'istio_requests_total', { reporter: 'source', destination_workload: 'unknown', response_code: '404', response_flags: 'NR', connection_security_policy: 'unknown' })).toBe(1)
  })

  test('the final status and flags are recorded; requests with different outcomes are different series', async () => {
    const s = setup('inbound')
    const h = s.build(async (ctx) => {
      if (ctx.path === '/denied') {
        ctx.res.writeHead(403, {})
        ctx.flags.push('AZ')
      } else ctx.res.writeHead(200, {})
    })
    for (const target of ['/ok', '/denied', '/ok']) await h(sanitizedContext({ peer: peer(BATCH), target }))
    expect(await metric(s.m, 'istio_requests_total', { response_code: '200', response_flags: '-' })).toBe(2)
    expect(await metric(s.m, 'istio_requests_total', { response_code: '403', response_flags: 'AZ', source_workload: 'worker' })).toBe(1)
    expect(await metric(s.m, 'istio_request_duration_milliseconds_count', { response_code: '200' })).toBe(2)
  })

  test('the label cache is per caller inbound and per cluster outbound: a second caller is not counted as the first', async () => {
    const s = setup('inbound')
    const h = s.build(respond(200))
    await h(sanitizedContext({ peer: peer(FRONTEND) }))
    await h(sanitizedContext({ peer: peer(BATCH) }))
    expect(await metric(s.m, 'istio_requests_total', { source_principal: FRONTEND })).toBe(1)
    expect(await metric(s.m, 'istio_requests_total', { source_principal: BATCH })).toBe(1)
    const o = setup('outbound')
    const oh = o.build(async (ctx) => void ctx.res.writeHead(200, {}))
    await oh(sanitizedContext({ direction: 'outbound' }, { cluster: PAYMENTS_CLUSTER }))
    await oh(sanitizedContext({ direction: 'outbound' }, { cluster: 'outbound|80||unknown.shop' }))
    expect(await metric(o.m, 'istio_requests_total', { destination_workload: 'payments' })).toBe(1)
    expect(await metric(o.m, 'istio_requests_total', { destination_workload: 'unknown' })).toBe(1)
  })

  test('recorded when the chain throws (the error still propagates)', async () => {
    const s = setup('inbound')
    const err = proxyError('REMORA_ERR_INTERNAL')
    await expect(s.build(async (ctx) => {
      ctx.flags.push('DPE')
      throw err
    })(sanitizedContext({}))).rejects.toBe(err)
    expect(await metric(s.m, 'istio_requests_total', { response_flags: 'DPE' })).toBe(1)
  })

  test('the caller went away before the head (DC): response_code 0', async () => {
    const m = await one('inbound', {}, async (ctx) => void ctx.flags.push('DC'))
    expect(await metric(m, 'istio_requests_total', { response_code: '0', response_flags: 'DC' })).toBe(1)
  })

  test('request and response sizes go to the byte histograms', async () => {
    const m = await one('inbound', {}, respond(200, { bytesReceived: 500, bytesSent: 5000 }))
    expect(await metric(m, 'istio_request_bytes_sum')).toBe(500)
    expect(await metric(m, 'istio_response_bytes_sum')).toBe(5000)
  })
})

describe('metrics: remora_authz_decisions_total', () => {
  const allow: Decision = { action: 'ALLOW', policy: 'shop/allow-frontend', ruleIndex: 0, reason: 'allow by shop/allow-frontend rules[0]', dryRun: [], audit: null }
  const deny: Decision = { action: 'DENY', policy: null, ruleIndex: null, reason: 'deny: no ALLOW policy matched', dryRun: [], audit: null }

  test('an ALLOW and a default DENY, by policy, mode enforce', async () => {
    const s = setup('inbound')
    await s.build(respond(200, { decision: allow }))(sanitizedContext({ peer: peer() }))
    await s.build(respond(403, { decision: deny, flags: ['AZ'] }))(sanitizedContext({ peer: peer(BATCH) }))
    expect(await metric(s.m, 'remora_authz_decisions_total', { action: 'ALLOW', policy: 'shop/allow-frontend', mode: 'enforce' })).toBe(1)
    expect(await metric(s.m, 'remora_authz_decisions_total', { action: 'DENY', policy: '-', mode: 'enforce' })).toBe(1)
  })

  test('a matched dry-run policy counts under mode dry_run; one that did not match does not count', async () => {
    const s = setup('inbound')
    const d: Decision = {
      ...allow,
      dryRun: [
        { policy: 'shop/deny-delete', action: 'DENY', matched: true, ruleIndex: 0 },
        { policy: 'shop/deny-batch', action: 'DENY', matched: false, ruleIndex: null },
      ],
    }
    await s.build(respond(200, { decision: d }))(sanitizedContext({ peer: peer() }))
    expect(await metric(s.m, 'remora_authz_decisions_total', { action: 'DENY', policy: 'shop/deny-delete', mode: 'dry_run' })).toBe(1)
    expect(await metric(s.m, 'remora_authz_decisions_total', { policy: 'shop/deny-batch' })).toBe(0)
  })

  test('no decision (no authz stage ran): nothing counted', async () => {
    const m = await one('inbound', {}, respond(200))
    expect(await metric(m, 'remora_authz_decisions_total')).toBe(0)
    expect(await metric(m, 'istio_requests_total')).toBe(1)
  })
})
