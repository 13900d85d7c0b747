// The traffic reporter: deltas since the last delivered report; a failed report is kept (bounded)
// and goes with the next one; a refused one is dropped; nothing before the certificate; one at a
// time; a last report on close. The HTTP side is covered by test/integration/traffic-record.test.ts.
import { describe, expect, test } from 'vitest'
import type { TrafficReport } from '../../../proxy/snapshot/index.js'
import type { AccessLogEntry } from '../../../proxy/telemetry/access-log-entry.js'
import { createTrafficRecorder } from '../../../proxy/traffic/index.js'
import { TrafficReporter } from '../../../proxy/xds/index.js'
import { captureLogger, until } from '../../helpers/mesh.js'

const DEST = { principal: 'spiffe://cluster.local/ns/shop/sa/orders', namespace: 'shop', workload: 'orders' }

const request = (path = '/orders'): AccessLogEntry =>
  ({
    direction: 'inbound', method: 'GET', path, protocol: 'HTTP/1.1', response_code: 200, response_flags: '-', error_code: null, duration_ms: 2,
    upstream_cluster: 'inbound|8080||', downstream_peer_principal: 'spiffe://cluster.local/ns/shop/sa/frontend', connection_security_policy: 'mutual_tls',
    authz_decision: 'ALLOW', authz_policy: null, authz_reason: 'allow', trace_id: null,
  }) as AccessLogEntry

function setup(o: { answers?: (number | Error)[]; ready?: () => boolean } = {}) {
  const recorder = createTrafficRecorder({ defaultPort: () => 8080, clock: { now: () => Date.now() } })
  const sent: TrafficReport[] = []
  const answers = [...(o.answers ?? [])]
  const logger = captureLogger()
  const reporter = new TrafficReporter({
    reporting: { destination: DEST, intervalMs: 60_000, recorder },
    post: async (report) => {
      sent.push(structuredClone(report))
      const a = answers.shift() ?? 200
      if (a instanceof Error) throw a
      return a
    },
    ready: o.ready ?? (() => true),
    logger,
  })
  return { recorder, sent, reporter, logger }
}

const total = (r: TrafficReport): number => r.edges.reduce((n, e) => n + e.count, 0)

describe('traffic reporter', () => {
  test('a report carries the deltas since the last delivered one, for this destination', async () => {
    const { recorder, sent, reporter } = setup()
    recorder.record(request())
    recorder.record(request())
    expect(await reporter.flush()).toEqual({ outcome: 'sent', edges: 1, status: 200 })
    recorder.record(request())
    await reporter.flush()
    expect(sent.map(total)).toEqual([2, 1])
    expect(sent[0]!.destination).toEqual(DEST)
  })

  test('nothing recorded: nothing sent', async () => {
    const { sent, reporter } = setup()
    expect(await reporter.flush()).toBeNull()
    expect(sent).toEqual([])
  })

  test('a failed report (5xx, unreachable) is kept and goes with the next one; logged once per outage', async () => {
    const { recorder, sent, reporter, logger } = setup({ answers: [503, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 200] })
    recorder.record(request())
    expect((await reporter.flush())!.outcome).toBe('kept')
    recorder.record(request())
    expect((await reporter.flush())!.outcome).toBe('kept')
    recorder.record(request('/other'))
    expect((await reporter.flush())!.outcome).toBe('sent')
    expect(sent.map(total)).toEqual([1, 2, 3])
    expect(logger.lines.filter((l) => (l.obj as { event?: string }).event === 'traffic_report_failed')).toHaveLength(1)
    expect(logger.lines.filter((l) => (l.obj as { event?: string }).event === 'traffic_report_recovered')).toHaveLength(1)
    expect(recorder.size).toBe(0)
  })

  test('a refused report (400, 403) is dropped, not retried', async () => {
    const { recorder, sent, reporter } = setup({ answers: [403] })
    recorder.record(request())
    expect((await reporter.flush())!.outcome).toBe('refused')
    expect(await reporter.flush()).toBeNull()
    expect(sent).toHaveLength(1)
  })

  test('before the first certificate nothing is taken: the record keeps accumulating', async () => {
    let ready = false
    const { recorder, sent, reporter } = setup({ ready: () => ready })
    recorder.record(request())
    expect(await reporter.flush()).toBeNull()
    expect(recorder.size).toBe(1)
    ready = true
    await reporter.flush()
    expect(sent.map(total)).toEqual([1])
  })

  test('one report at a time: a flush during a report follows it, with what came since', async () => {
    const recorder = createTrafficRecorder({ defaultPort: () => 8080, clock: { now: () => Date.now() } })
    const sent: number[] = []
    let inFlight = 0
    let release: () => void = () => {}
    const reporter = new TrafficReporter({
      reporting: { destination: DEST, intervalMs: 60_000, recorder },
      post: async (report) => {
        inFlight++
        expect(inFlight).toBe(1)
        sent.push(total(report))
        await new Promise<void>((r) => (release = r))
        inFlight--
        return 200
      },
      ready: () => true,
      logger: captureLogger(),
    })
    recorder.record(request())
    const first = reporter.flush()
    await until(() => sent.length === 1)
    recorder.record(request())
    recorder.record(request())
    const second = reporter.flush()
    release()
    await first
    await until(() => sent.length === 2)
    release()
    await second
    expect(sent).toEqual([1, 2])
  })

  test('close makes a last report', async () => {
    const { recorder, sent, reporter } = setup()
    recorder.record(request())
    await reporter.close()
    expect(sent.map(total)).toEqual([1])
  })
})
