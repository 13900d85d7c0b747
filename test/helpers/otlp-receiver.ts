// A fake Jaeger/OTLP collector for tests: a real HTTP server that accepts OTLP/HTTP protobuf
// (POST /v1/traces), decodes each body with protobufjs against the OTLP trace protos (the subset
// below, field numbers as in opentelemetry-proto), and keeps the spans. It can also be slow.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import protobuf from 'protobufjs'

// opentelemetry/proto/collector/trace/v1 + trace/v1 + common/v1 + resource/v1, only what we read
// (unknown fields such as events and links are skipped by the decoder, as protobuf requires).
const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  Status status = 15;
  fixed32 flags = 16;
  enum SpanKind {
    SPAN_KIND_UNSPECIFIED = 0; SPAN_KIND_INTERNAL = 1; SPAN_KIND_SERVER = 2; SPAN_KIND_CLIENT = 3;
    SPAN_KIND_PRODUCER = 4; SPAN_KIND_CONSUMER = 5;
  }
}
message Status {
  string message = 2;
  StatusCode code = 3;
  enum StatusCode { STATUS_CODE_UNSET = 0; STATUS_CODE_OK = 1; STATUS_CODE_ERROR = 2; }
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
`

const root = protobuf.parse(OTLP_TRACE_PROTO, { keepCase: false }).root
const ExportTraceServiceRequest = root.lookupType('otlp.ExportTraceServiceRequest')

export type AttrValue = string | number | boolean | null | AttrValue[]

export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** '' for a root span. */
  parentSpanId: string
  name: string
  kind: 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER'
  attributes: Record<string, AttrValue>
  status: { code: 'UNSET' | 'OK' | 'ERROR'; message: string }
  resource: Record<string, AttrValue>
  scope: string
  startNs: bigint
  endNs: bigint
}

interface PbAnyValue {
  stringValue?: string
  boolValue?: boolean
  intValue?: number | string | { toString(): string }
  doubleValue?: number
  arrayValue?: { values?: PbAnyValue[] }
  bytesValue?: Uint8Array
}
interface PbKeyValue {
  key: string
  value?: PbAnyValue
}

function anyValue(v: PbAnyValue | undefined): AttrValue {
  if (!v) return null
  if (v.stringValue !== undefined) return v.stringValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.intValue !== undefined) return Number(v.intValue.toString())
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue)
  if (v.bytesValue) return Buffer.from(v.bytesValue).toString('hex')
  return null
}

function attrs(kvs: PbKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {}
  for (const kv of kvs ?? []) out[kv.key] = anyValue(kv.value)
  return out
}

const hex = (b: Uint8Array | undefined): string => (b && b.length ? Buffer.from(b).toString('hex') : '')
const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'] as const
const CODES = ['UNSET', 'OK', 'ERROR'] as const

/** Decodes one OTLP ExportTraceServiceRequest body into flat spans. */
export function decodeOtlpTraces(body: Uint8Array): ReceivedSpan[] {
  const msg = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), { longs: String, enums: Number, defaults: false }) as {
    resourceSpans?: { resource?: { attributes?: PbKeyValue[] }; scopeSpans?: { scope?: { name?: string }; spans?: Record<string, unknown>[] }[] }[]
  }
  const out: ReceivedSpan[] = []
  for (const rs of msg.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const status = (s.status ?? {}) as { code?: number; message?: string }
        out.push({
          traceId: hex(s.traceId as Uint8Array),
          spanId: hex(s.spanId as Uint8Array),
          parentSpanId: hex(s.parentSpanId as Uint8Array | undefined),
          name: String(s.name ?? ''),
          kind: KINDS[Number(s.kind ?? 0)] ?? 'UNSPECIFIED',
          attributes: attrs(s.attributes as PbKeyValue[] | undefined),
          status: { code: CODES[status.code ?? 0] ?? 'UNSET', message: status.message ?? '' },
          resource,
          scope: ss.scope?.name ?? '',
          startNs: BigInt(String(s.startTimeUnixNano ?? '0')),
          endNs: BigInt(String(s.endTimeUnixNano ?? '0')),
        })
      }
    }
  }
  return out
}

export interface OtlpReceiver {
  /** Base URL (http://127.0.0.1:PORT): the exporter appends /v1/traces. */
  url: string
  port: number
  spans: ReceivedSpan[]
  /** POST bodies received (including those answered slowly). */
  requests: number
  /** Delay before answering each export, to play a slow collector. */
  delayMs: number
  /** Resolves when at least `n` spans matching `pred` have arrived. */
  waitForSpans(n: number, pred?: (s: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>
  close(): Promise<void>
}

export async function startOtlpReceiver(o: { delayMs?: number } = {}): Promise<OtlpReceiver> {
  const waiters = new Set<() => void>()
  const r: OtlpReceiver = {
    url: '',
    port: 0,
    spans: [],
    requests: 0,
    delayMs: o.delayMs ?? 0,
    waitForSpans(n, pred = () => true, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hits = r.spans.filter(pred)
          if (hits.length < n) return false
          clearTimeout(timer)
          waiters.delete(check)
          resolve(hits)
          return true
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`OTLP receiver: ${r.spans.filter(pred).length} of ${n} spans after ${timeoutMs} ms`))
        }, timeoutMs)
        if (!check()) waiters.add(check)
      })
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((res) => server.close(() => res()))
    },
  }
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      r.requests++
      let body = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      const answer = (): void => {
        if (res.destroyed) return
        try {
          r.spans.push(...decodeOtlpTraces(body))
        } catch {
          res.writeHead(400).end()
          return
        }
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
        for (const w of [...waiters]) w()
      }
      if (r.delayMs > 0) setTimeout(answer, r.delayMs)
      else answer()
    })
  })
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  r.port = (server.address() as AddressInfo).port
  r.url = `http://127.0.0.1:${r.port}`
  return r
}
