import pino from 'pino'
import type { AccessLogEntry } from './access-log-entry.js'

/** The line formats (sidecar.yaml accessLog.format validates against the same two). */
export type AccessLogFormat = 'json' | 'text'

/** sidecar.yaml's accessLog section, as the writer needs it. */
export interface AccessLogSettings {
  readonly enabled: boolean
  readonly path?: string
  readonly format: AccessLogFormat
}

const dash = (v: string | number | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : String(v))
const q = (v: string | null | undefined): string => `"${dash(v).replace(/["\\]/g, (c) => `\\${c}`)}"`

/**
 * Envoy's default access log format
 *   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
 *   %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%"
 *   "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
 * followed by what a mesh operator needs on the same line (as Istio's default adds the cluster and
 * addresses): upstream cluster, downstream address, peer principal, "decision policy", trace id, and
 * the Jaeger link when there is one. X-Forwarded-For and User-Agent are not recorded: always "-".
 */
export function formatAccessLogText(e: AccessLogEntry): string {
  return (
    `[${e.start_time}] "${e.method} ${e.path} ${e.protocol}" ${e.response_code} ${e.response_flags} ` +
    `${e.bytes_received} ${e.bytes_sent} ${Math.round(e.duration_ms)} ${e.upstream_service_time_ms === null ? '-' : Math.round(e.upstream_service_time_ms)} ` +
    `"-" "-" ${q(e.request_id)} ${q(e.authority)} ${q(e.upstream_host)} ` +
    `${dash(e.upstream_cluster)} ${dash(e.downstream_remote_address)} ${dash(e.downstream_peer_principal)} ` +
    `${q(e.authz_decision ? `${e.authz_decision} ${dash(e.authz_policy)}` : null)} ${dash(e.trace_id)}` +
    (e.trace_link ? ` ${e.trace_link}` : '')
  )
}

export function formatAccessLogJson(e: AccessLogEntry): string {
  return JSON.stringify(e)
}

export function accessLogFormatter(format: AccessLogFormat): (e: AccessLogEntry) => string {
  return format === 'text' ? formatAccessLogText : formatAccessLogJson
}

const BATCH_BYTES = 64 * 1024
const BATCH_MS = 100

/** A buffered, asynchronous line writer (stdout or a file): the access log never blocks the request path. */
export function createAccessLogWriter(config: AccessLogSettings): { write: (e: AccessLogEntry) => void; flush: () => void; ready: Promise<void> } {
  if (!config.enabled) return { write: () => {}, flush: () => {}, ready: Promise.resolve() }
  const format = accessLogFormatter(config.format)
  // minLength 0: the batching is ours (below); with SonicBoom's own minimum a quiet sidecar's lines
  // sat in memory until 4 KiB built up: never in `kubectl logs`, lost on a SIGKILL.
  const dest = pino.destination({ dest: config.path ?? 1, sync: false, minLength: 0 })
  // A file opens asynchronously; lines written before that are buffered, not lost.
  const ready = config.path ? new Promise<void>((resolve, reject) => dest.once('ready', () => resolve()).once('error', reject)) : Promise.resolve()
  // Lines are joined here and handed to the destination 64 KiB at a time, or after 100 ms (Envoy
  // flushes every 1 s). One SonicBoom write per line (its bookkeeping re-measures the growing
  // buffer each time, and a thread-pool write follows every few lines) cost the sidecar pair
  // 30–40 µs of CPU per request at full load; batched, ≈ 10 (bench/hot-path.md).
  let lines: string[] = []
  let bytes = 0
  let timer: NodeJS.Timeout | null = null
  const drain = (): void => {
    if (timer !== null) {
      clearTimeout(timer)
      timer = null
    }
    if (lines.length === 0) return
    const chunk = lines.join('')
    lines = []
    bytes = 0
    dest.write(chunk)
  }
  return {
    write: (e) => {
      const line = format(e) + '\n'
      lines.push(line)
      bytes += line.length
      if (bytes >= BATCH_BYTES) drain()
      else if (timer === null) {
        timer = setTimeout(drain, BATCH_MS)
        timer.unref()
      }
    },
    flush: () => {
      drain()
      try {
        dest.flushSync()
      } catch {
        // not open yet (nothing can be flushed synchronously): the buffered lines follow on open
      }
    },
    ready,
  }
}
