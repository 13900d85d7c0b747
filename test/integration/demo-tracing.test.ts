import { expect, test } from 'vitest'
import { runRemora } from '../helpers/process.js'
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js'

test('remora demo --once --jaeger URL: every sidecar exports OTLP there; the allowed chain is one trace across the three services; the hints say where to look', async () => {
  const receiver = await startOtlpReceiver()
  try {
    const child = runRemora(['demo', '--once', '--jaeger', receiver.url])
    const code = await child.exited
    expect(child.stderr).toBe('')
    expect(code).toBe(0)
    expect(child.stdout).toContain(`traces: exported to ${receiver.url}`)
    expect(child.stdout).toContain('open http://127.0.0.1:16686/search?service=frontend')
    expect(child.stdout).toMatch(/metrics \(Prometheus text, Istio's names\): frontend localhost:\d+\/stats\/prometheus/)
    const byTrace = new Map<string, ReceivedSpan[]>()
    for (const s of receiver.spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s])
    // you → [frontend in] → [frontend out] → [orders in] → [orders out] → [payments in]
    const chains = [...byTrace.values()].filter((spans) => {
      const shape = new Set(spans.map((s) => `${String(s.resource['service.name'])}:${s.kind}`))
      return ['frontend:SERVER', 'frontend:CLIENT', 'orders:SERVER', 'orders:CLIENT', 'payments:SERVER'].every((k) => shape.has(k))
    })
    expect(chains.length).toBeGreaterThanOrEqual(1)
    const chain = chains[0]!
    const ids = new Set(chain.map((s) => s.spanId))
    expect(chain.filter((s) => s.parentSpanId === '' || !ids.has(s.parentSpanId))).toHaveLength(1) // one root, the rest linked
  } finally {
    await receiver.close()
  }
}, 90_000)
