// A fake Jaeger collector for the legacy exporter (@opentelemetry/exporter-jaeger): a real HTTP
// server taking what jaeger-client's HTTPSender posts to /api/traces (a Thrift Batch in the binary
// protocol, application/x-thrift), decoded by a small TBinaryProtocol reader and mapped with the
// field ids of jaeger-idl's jaeger.thrift.
import http from 'node:http'
import type { AddressInfo } from 'node:net'

type TValue = boolean | number | bigint | string | Buffer | TStruct | TValue[] | Map<TValue, TValue>
type TStruct = Map<number, TValue>

class Reader {
  o = 0
  constructor(readonly b: Buffer) {}
  value(type: number): TValue {
    const b = this.b
    switch (type) {
      case 2: return b.readInt8(this.o++) !== 0 // bool
      case 3: return b.readInt8(this.o++) // byte
      case 4: { const v = b.readDoubleBE(this.o); this.o += 8; return v }
      case 6: { const v = b.readInt16BE(this.o); this.o += 2; return v }
      case 8: { const v = b.readInt32BE(this.o); this.o += 4; return v }
      case 10: { const v = b.readBigInt64BE(this.o); this.o += 8; return v }
      case 11: { const n = b.readInt32BE(this.o); this.o += 4; const v = b.subarray(this.o, this.o + n); this.o += n; return Buffer.from(v) }
      case 12: return this.struct()
      case 13: { const kt = b.readInt8(this.o++); const vt = b.readInt8(this.o++); const n = b.readInt32BE(this.o); this.o += 4; const m = new Map<TValue, TValue>(); for (let i = 0; i < n; i++) m.set(this.value(kt), this.value(vt)); return m }
      case 14: case 15: { const et = b.readInt8(this.o++); const n = b.readInt32BE(this.o); this.o += 4; const l: TValue[] = []; for (let i = 0; i < n; i++) l.push(this.value(et)); return l }
      default: throw new Error(`thrift: unknown type ${type} at ${this.o}`)
    }
  }
  struct(): TStruct {
    const s: TStruct = new Map()
    for (;;) {
      const type = this.b.readInt8(this.o++)
      if (type === 0) return s // STOP
      const id = this.b.readInt16BE(this.o)
      this.o += 2
      s.set(id, this.value(type))
    }
  }
}

export interface JaegerSpan {
  traceId: string
  spanId: string
  parentSpanId: string
  operationName: string
  serviceName: string
  tags: Record<string, string | number | boolean>
}

const hex64 = (v: TValue | undefined): string => BigInt.asUintN(64, (v as bigint | undefined) ?? 0n).toString(16).padStart(16, '0')
const str = (v: TValue | undefined): string => (Buffer.isBuffer(v) ? v.toString('utf8') : '')

function tags(list: TValue | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {}
  for (const t of (list as TStruct[] | undefined) ?? []) {
    // Tag { 1: key, 2: vType (STRING 0, DOUBLE 1, BOOL 2, LONG 3, BINARY 4), 3: vStr, 4: vDouble, 5: vBool, 6: vLong }
    const vType = t.get(2) as number
    out[str(t.get(1))] = vType === 0 ? str(t.get(3)) : vType === 1 ? (t.get(4) as number) : vType === 2 ? (t.get(5) as boolean) : Number(t.get(6) as bigint)
  }
  return out
}

/** Decodes one Thrift-binary Jaeger Batch { 1: Process { 1: serviceName }, 2: list<Span> }. */
export function decodeJaegerBatch(body: Buffer): JaegerSpan[] {
  const batch = new Reader(body).struct()
  const serviceName = str((batch.get(1) as TStruct | undefined)?.get(1))
  return ((batch.get(2) as TStruct[] | undefined) ?? []).map((s) => ({
    traceId: hex64(s.get(2)) + hex64(s.get(1)), // traceIdHigh, traceIdLow
    spanId: hex64(s.get(3)),
    parentSpanId: hex64(s.get(4)),
    operationName: str(s.get(5)),
    serviceName,
    tags: tags(s.get(10)),
  }))
}

export interface JaegerCollector {
  /** http://127.0.0.1:PORT/api/traces */
  endpoint: string
  spans: JaegerSpan[]
  contentTypes: string[]
  close(): Promise<void>
}

export async function startJaegerCollector(): Promise<JaegerCollector> {
  const c: JaegerCollector = { endpoint: '', spans: [], contentTypes: [], close: async () => {} }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/traces') return void res.writeHead(404).end()
      c.contentTypes.push(String(req.headers['content-type']))
      c.spans.push(...decodeJaegerBatch(Buffer.concat(chunks)))
      res.writeHead(202).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  c.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/traces`
  c.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  }
  return c
}
