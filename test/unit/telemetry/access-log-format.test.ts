import { expect, test } from 'vitest'
import { formatAccessLogJson, formatAccessLogText } from '../../../proxy/telemetry/index.js'
import type { AccessLogEntry } from '../../../proxy/stages/index.js'

const entry: AccessLogEntry = {
  start_time: '2026-01-02T03:04:05.678Z',
  direction: 'inbound',
  method: 'POST',
  authority: 'payments.shop',
  path: '/charge',
  protocol: 'HTTP/1.1',
  response_code: 403,
  response_flags: 'AZ',
  error_code: 'REMORA_ERR_AUTHZ_DENIED',
  duration_ms: 1.6,
  upstream_service_time_ms: null,
  bytes_received: 12,
  bytes_sent: 19,
  upstream_cluster: 'inbound|8080||',
  upstream_host: null,
  downstream_remote_address: '10.0.0.7:51234',
  downstream_peer_principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
  connection_security_policy: 'mutual_tls',
  request_id: '5f1c…',
  authz_decision: 'DENY',
  authz_policy: 'shop/payments-allow-orders',
  authz_reason: 'deny: no ALLOW policy matched',
  trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  span_id: '00f067aa0ba902b7',
  trace_link: 'http://localhost:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736',
}

test('text: Envoy’s default format, then cluster, downstream, peer, decision, trace id and link', () => {
  expect(formatAccessLogText(entry)).toBe(
    '[2026-01-02T03:04:05.678Z] "POST /charge HTTP/1.1" 403 AZ 12 19 2 - "-" "-" "5f1c…" "payments.shop" "-" ' +
      'inbound|8080|| 10.0.0.7:51234 spiffe://cluster.local/ns/shop/sa/frontend "DENY shop/payments-allow-orders" 4bf92f3577b34da6a3ce929d0e0e4736 ' +
      'http://localhost:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736',
  )
})

test('text: untraced, no peer, no decision → dashes; quotes in values are escaped', () => {
  const line = formatAccessLogText({ ...entry, trace_id: null, span_id: null, trace_link: undefined, downstream_peer_principal: null, authz_decision: null, authority: 'a"b' })
  expect(line).toContain('"a\\"b"')
  expect(line.endsWith(' 10.0.0.7:51234 - "-" -')).toBe(true)
})

test('json: one object per line with the trace fields', () => {
  const j = JSON.parse(formatAccessLogJson(entry)) as AccessLogEntry
  expect(j.trace_id).toBe(entry.trace_id)
  expect(j.span_id).toBe(entry.span_id)
  expect(formatAccessLogJson(entry)).not.toContain('\n')
})

test('the writer: text lines into a file (the sink), asynchronously, flushed on demand', async () => {
  const { mkdtemp, readFile } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const { createAccessLogWriter } = await import('../../../proxy/telemetry/index.js')
  const path = join(await mkdtemp(join(tmpdir(), 'remora-al-')), 'access.log')
  const w = createAccessLogWriter({ enabled: true, path, format: 'text' })
  w.write(entry)
  w.write({ ...entry, response_code: 200, response_flags: '-' })
  await w.ready
  w.flush()
  const lines = (await readFile(path, 'utf8')).trimEnd().split('\n')
  expect(lines).toHaveLength(2)
  expect(lines[0]).toBe(formatAccessLogText(entry))
  expect(lines[1]).toContain('"POST /charge HTTP/1.1" 200 - ')
})
