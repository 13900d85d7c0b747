// The graph model of `remora graph` (and of the web view): recorded edges summed per caller → callee
// workload, rates over the window, percentiles from the histogram, denials, recorded strings escaped.
import { describe, expect, test } from 'vitest'
import { buildGraph, formatGraph, printable, quantile } from '../../../cli/commands/graph.js'
import { T0, demoEdges, latency, observed, spiffe } from '../../helpers/traffic.js'

const WINDOW = { from: T0, to: T0 + 100_000 }

describe('quantile', () => {
  test('interpolates within the bucket as histogram_quantile does', () => {
    // 100 requests in (5, 10]: the median is halfway through the bucket.
    expect(quantile(latency([[10, 100]]), 0.5)).toBeCloseTo(7.5)
    // 99 fast, 1 slow in (100, 250]: p99 is the end of the fast bucket, p50 inside it.
    const h = latency([[1, 99], [250, 1]])
    expect(quantile(h, 0.5)).toBeCloseTo(0.505)
    expect(quantile(h, 0.99)).toBeCloseTo(1)
    expect(quantile(h, 1)).toBeCloseTo(250)
  })

  test('nothing timed is null; the +Inf bucket reports the last finite bound', () => {
    expect(quantile(latency([]), 0.5)).toBeNull()
    expect(quantile(latency([[60_000, 3]]), 0.99)).toBe(10_000)
  })
})

describe('buildGraph', () => {
  test('the demo record: one edge per caller → callee with summed counts, rate, errors and decisions', () => {
    const g = buildGraph(demoEdges(), WINDOW)
    expect(g.nodes.map((n) => n.id)).toEqual(['(plaintext)', 'batch/reporter', 'shop/frontend', 'shop/orders', 'shop/payments'])
    expect(g.edges.map((e) => `${e.from} → ${e.to}`)).toEqual(['(plaintext) → shop/frontend', 'batch/reporter → shop/orders', 'shop/frontend → shop/orders', 'shop/frontend → shop/payments', 'shop/orders → shop/payments'])
    const fo = g.edges.find((e) => e.from === 'shop/frontend' && e.to === 'shop/orders')!
    expect(fo).toMatchObject({ count: 540, allow: 540, deny: 0, errors: 3, mtls: 'all', traceId: 'a'.repeat(32) })
    expect(fo.rps).toBeCloseTo(5.4)
    expect(fo.errorRate).toBeCloseTo(3 / 540)
    expect(fo.parts).toHaveLength(3)
    const op = g.edges.find((e) => e.from === 'shop/orders')!
    expect(op.parts.map((p) => p.protocol).sort()).toEqual(['http', 'tcp'])
    const denied = g.edges.find((e) => e.from === 'shop/frontend' && e.to === 'shop/payments')!
    expect(denied).toMatchObject({ allow: 0, deny: 7, denials: [{ reason: 'deny: no ALLOW policy matched (1 applied: shop/payments-allow-orders)' }] })
    expect(g.edges[0]).toMatchObject({ from: '(plaintext)', mtls: 'none' })
  })

  test('a caller that also serves is named by the workload it serves as, not by its service account', () => {
    const edges = [
      observed({ namespace: 'shop', workload: 'orders', sa: 'orders-sa' }, { source: spiffe('shop', 'frontend') }),
      observed({ namespace: 'shop', workload: 'payments' }, { source: spiffe('shop', 'orders-sa') }),
    ]
    expect(buildGraph(edges, WINDOW).edges.map((e) => e.from)).toEqual(['shop/frontend', 'shop/orders'])
  })

  test('mixed mTLS and plaintext requests on one edge are "some"', () => {
    const to = { namespace: 'shop', workload: 'orders' }
    const g = buildGraph([observed(to, { source: spiffe('shop', 'a'), mtls: true }), observed(to, { source: spiffe('shop', 'a'), path: '/x', mtls: false })], WINDOW)
    expect(g.edges[0]!.mtls).toBe('some')
  })
})

describe('text output', () => {
  test('one line per edge; a denied edge says DENIED with its latest reason; red only on a terminal', () => {
    const g = buildGraph(demoEdges(), WINDOW)
    const plain = formatGraph(g, { color: false })
    expect(plain).toHaveLength(1 + g.edges.length)
    const line = plain.find((l) => l.startsWith('shop/frontend → shop/payments'))!
    expect(line).toMatch(/DENY +7 +DENIED: deny: no ALLOW policy matched/)
    expect(line).not.toContain('\u001b')
    expect(plain.find((l) => l.startsWith('shop/frontend → shop/orders'))).toMatch(/5\.4 rps +err +0\.6% +p50 +\S+ +p99 +\S+ +mTLS +ALLOW +540 +DENY +0$/)
    const red = formatGraph(g, { color: true }).find((l) => l.includes('DENIED'))!
    expect(red.startsWith('\u001b[31m') && red.endsWith('\u001b[0m')).toBe(true)
  })

  test('control characters from the record (an ANSI escape in a path or reason) are printed escaped', () => {
    expect(printable('/a\u001b[2Jb\nc')).toBe('/a\\u001b[2Jb\\u000ac')
    const e = observed({ namespace: 'shop', workload: 'orders' }, { source: spiffe('shop', 'x'), decision: 'DENY', denials: [{ at: T0, reason: 'evil\u001b]0;owned\u0007' }] })
    const out = formatGraph(buildGraph([e], WINDOW), { color: false }).join('\n')
    expect([...out].filter((c) => c !== '\n' && c.charCodeAt(0) < 0x20)).toEqual([])
    expect(out).toContain('evil\\u001b]0;owned\\u0007')
  })
})
