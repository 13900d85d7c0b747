import type { Logger } from '../deps.js'
import type { TrafficReport } from '../snapshot/index.js'
import { batchOf, trafficReport, type TrafficReporting } from '../traffic/index.js'

export interface TrafficReporterOptions {
  readonly reporting: TrafficReporting
  /** POSTs one report to the control plane (`POST /v1/traffic`, mTLS); resolves with the HTTP status. */
  readonly post: (report: TrafficReport, timeoutMs: number) => Promise<number>
  /** false before the first certificate: nothing is taken, the record keeps accumulating (bounded). */
  readonly ready: () => boolean
  readonly logger: Logger
  /** Called after each attempt that had something to send. */
  readonly onResult?: (r: TrafficReportResult) => void
}

/** sent: delivered; kept: not delivered, back in the record for the next interval; refused: the control plane refused its content (400/403), not retried. */
export type TrafficReportResult = { readonly outcome: 'sent' | 'kept' | 'refused'; readonly edges: number; readonly status: number | null }

const LAST_FLUSH_MS = 1000

/**
 * Sends the sidecar's traffic record every interval: the deltas since the last report that got
 * through. A report that fails (control plane down, a 5xx, a timeout) is put back into the record,
 * within its bound, and goes with the next one; a report the control plane refuses for what it says
 * (400, 403) would be refused again and is dropped, logged. One report at a time. Failures are
 * logged once per outage, not per interval.
 */
export class TrafficReporter {
  #timer: NodeJS.Timeout | null = null
  #chain: Promise<TrafficReportResult | null> = Promise.resolve(null)
  #busy = false
  #failing = false
  #closed = false

  constructor(private readonly o: TrafficReporterOptions) {}

  start(): void {
    if (this.#timer || this.#closed) return
    this.#timer = setInterval(() => {
      if (!this.#busy) void this.flush()
    }, this.o.reporting.intervalMs)
    this.#timer.unref()
  }

  /** Reports what was recorded until now (after any report under way); null when there was nothing to send or no certificate yet. */
  flush(timeoutMs = 10_000): Promise<TrafficReportResult | null> {
    const next = this.#chain.then(() => this.#once(timeoutMs))
    this.#chain = next.catch(() => null)
    return next
  }

  async #once(timeoutMs: number): Promise<TrafficReportResult | null> {
    if (!this.o.ready()) return null
    const { recorder, destination } = this.o.reporting
    const report = trafficReport(destination, recorder.take())
    if (report === null) return null
    this.#busy = true
    let status: number | null = null
    let error: string | null = null
    try {
      status = await this.o.post(report, timeoutMs)
    } catch (err) {
      error = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    } finally {
      this.#busy = false
    }
    const edges = report.edges.length
    let r: TrafficReportResult
    if (status === 200) {
      if (this.#failing) this.o.logger.info({ event: 'traffic_report_recovered' }, 'traffic reports are delivered again')
      this.#failing = false
      r = { outcome: 'sent', edges, status }
    } else if (status === 400 || status === 403) {
      this.o.logger.warn({ event: 'traffic_report_refused', status, edges }, 'the control plane refused a traffic report; its edges are dropped')
      r = { outcome: 'refused', edges, status }
    } else {
      recorder.restore(batchOf(report))
      if (!this.#failing) this.o.logger.warn({ event: 'traffic_report_failed', status, error }, 'traffic report not delivered; kept for the next interval')
      this.#failing = true
      r = { outcome: 'kept', edges, status }
    }
    this.o.onResult?.(r)
    return r
  }

  /** Stops the timer and makes a last report, best effort (at most ~1 s). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await Promise.race([this.flush(LAST_FLUSH_MS).catch(() => null), new Promise((r) => setTimeout(r, LAST_FLUSH_MS + 200).unref())])
  }
}
