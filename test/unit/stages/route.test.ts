// route: outbound Host → cluster → endpoint (round robin), and the inbound app target. The stage
// only chooses; the terminal `upstream` uses ctx.route.
import { describe, expect, test } from 'vitest'
import { createInboundRouteStage, createOutboundRouteStage, type RoutedCluster, type RouteTable } from '../../../proxy/stages/index.js'
import { proxyErrorOf, recordingNext, routeTarget, sanitizedContext } from './context.js'

function cluster(name: string, ...addresses: string[]): RoutedCluster {
  return { name, targets: addresses.map((a) => routeTarget(name, a)), next: 0 }
}

function table(...entries: [string, RoutedCluster][]): RouteTable {
  return new Map(entries)
}

const outbound = (host: string) => sanitizedContext({ direction: 'outbound', host })

describe('outbound route', () => {
  test('the Host picks the cluster; ctx.cluster, ctx.upstreamHost and ctx.route name one of its endpoints', async () => {
    const payments = cluster('outbound|9090||payments.shop', '10.1.0.1:15006')
    const next = recordingNext()
    const ctx = outbound('payments.shop')
    await createOutboundRouteStage(table(['payments.shop', payments], ['orders.shop', cluster('outbound|80||orders.shop', '10.2.0.1:15006')]))(next)(ctx)
    expect(next.calls).toEqual([ctx])
    expect(ctx.cluster).toBe('outbound|9090||payments.shop')
    expect(ctx.upstreamHost).toBe('10.1.0.1:15006')
    expect(ctx.route).toBe(payments.targets[0])
  })

  test('endpoints are chosen round robin, request by request', async () => {
    const c = cluster('outbound|80||orders.shop', '10.0.0.1:15006', '10.0.0.2:15006', '10.0.0.3:15006')
    const handler = createOutboundRouteStage(table(['orders.shop', c]))(recordingNext())
    const chosen: (string | null)[] = []
    for (let i = 0; i < 5; i++) {
      const ctx = outbound('orders.shop')
      await handler(ctx)
      chosen.push(ctx.upstreamHost)
    }
    expect(chosen).toEqual(['10.0.0.1:15006', '10.0.0.2:15006', '10.0.0.3:15006', '10.0.0.1:15006', '10.0.0.2:15006'])
  })

  test('host:port is looked up first, then the bare host', async () => {
    const byPort = cluster('outbound|8443||orders.shop', '10.0.0.9:15006')
    const byHost = cluster('outbound|80||orders.shop', '10.0.0.1:15006')
    const handler = createOutboundRouteStage(table(['orders.shop:8443', byPort], ['orders.shop', byHost]))(recordingNext())
    const withPort = outbound('orders.shop:8443')
    await handler(withPort)
    expect(withPort.cluster).toBe(byPort.name)
    const otherPort = outbound('orders.shop:7000')
    await handler(otherPort)
    expect(otherPort.cluster).toBe(byHost.name)
  })

  test('an unknown host is 404 REMORA_ERR_ROUTE_NOT_FOUND (NR) and next never runs', async () => {
    const next = recordingNext()
    const ctx = outbound('unknown.shop')
    const err = await proxyErrorOf(createOutboundRouteStage(table(['orders.shop', cluster('c', '10.0.0.1:1')]))(next)(ctx))
    expect(err).toMatchObject({ code: 'REMORA_ERR_ROUTE_NOT_FOUND', status: 404, flag: 'NR' })
    expect(next.calls).toHaveLength(0)
    expect(ctx.route).toBeNull()
  })

  test('a cluster without endpoints is 503 REMORA_ERR_UPSTREAM_NO_HEALTHY (UH); the cluster is still recorded', async () => {
    const next = recordingNext()
    const ctx = outbound('orders.shop')
    const err = await proxyErrorOf(createOutboundRouteStage(table(['orders.shop', cluster('outbound|80||orders.shop')]))(next)(ctx))
    expect(err).toMatchObject({ code: 'REMORA_ERR_UPSTREAM_NO_HEALTHY', status: 503, flag: 'UH' })
    expect(next.calls).toHaveLength(0)
    expect(ctx.cluster).toBe('outbound|80||orders.shop')
    expect(ctx.route).toBeNull()
  })
})

describe('inbound route', () => {
  test('every request goes to the local app target, whatever its Host', async () => {
    const app = routeTarget('inbound|8080||', '127.0.0.1:8080')
    const next = recordingNext()
    const handler = createInboundRouteStage(app)(next)
    for (const host of ['orders.shop', 'anything.else']) {
      const ctx = sanitizedContext({ host })
      await handler(ctx)
      expect(ctx).toMatchObject({ cluster: 'inbound|8080||', upstreamHost: '127.0.0.1:8080' })
      expect(ctx.route).toBe(app)
    }
    expect(next.calls).toHaveLength(2)
  })
})
