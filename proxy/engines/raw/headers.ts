import type { IncomingHttpHeaders } from 'node:http'
import { HOP_BY_HOP, isSidecarOwnedHeader } from '../common/index.js'
import { RemoraError } from '../../errors/index.js'

// Header dictionaries and heads for the raw engine. Stages see `req.headers` exactly as node:http
// builds it (so both engines make the same decisions); heads going out are rebuilt from data.

// node:http keeps only the first of these when a request repeats them (IncomingMessage#_addHeaderLine).
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
])

/** node:http's `req.headers` from raw pairs: set-cookie an array, cookie joined by "; ", others by ", ". */
export function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  // No prototype: a header named `constructor` or `__proto__` is just a header.
  const out = Object.create(null) as Record<string, string | string[]>
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    if (k === '__proto__') continue // node:http's plain object drops it too: same facts on both engines
    const v = raw[i + 1]!
    const cur = out[k]
    if (cur === undefined) out[k] = k === 'set-cookie' ? [v] : v
    else if (k === 'set-cookie') (cur as string[]).push(v)
    else if (!FIRST_ONLY.has(k)) out[k] = `${cur as string}${k === 'cookie' ? '; ' : ', '}${v}`
  }
  return out as IncomingHttpHeaders
}


const UNSAFE_VALUE = /[\r\n\0]/

/** A header value set by a stage carries CR, LF or NUL: a bug, never sent (500). */
export class HeaderInjectionError extends RemoraError<'REMORA_ERR_INTERNAL'> {
  constructor(name: string) {
    super('REMORA_ERR_INTERNAL', 500, `header ${name} carries a line break`)
  }
}

/** `name: value` lines for a header dictionary (values set by stages are checked for CR/LF/NUL). */
export function headerLines(h: Readonly<Record<string, string | string[]>>): string {
  let out = ''
  for (const k in h) {
    const v = h[k]!
    if (typeof v === 'string') {
      if (UNSAFE_VALUE.test(v)) throw new HeaderInjectionError(k)
      out += `${k}: ${v}\r\n`
    } else {
      for (const one of v) {
        if (UNSAFE_VALUE.test(one)) throw new HeaderInjectionError(k)
        out += `${k}: ${one}\r\n`
      }
    }
  }
  return out
}

/** Facts about a response head that decide how its body is framed on the next hop. */
export interface ResponseHeadFacts {
  /** The header lines to pass on: hop-by-hop fields and those named in Connection removed. */
  lines: string
  contentLength: string | null
  chunked: boolean
  /** The server's `Keep-Alive: timeout=N` hint in ms, if it gave one. */
  keepAliveMs: number | null
}

/**
 * Filters an upstream response's raw pairs (from llhttp, so no CR/LF inside). `dropOwned` (the
 * inbound listener: the upstream is the local app) also removes `x-remora-*` and `x-envoy-*`, so an
 * app cannot imitate a sidecar's denial (`x-remora-response-flags: AZ`, `x-remora-denied-by`).
 */
export function responseHeadFacts(raw: readonly string[], drop: ReadonlySet<string> | null, dropOwned = false): ResponseHeadFacts {
  let named: string[] | null = null
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') (named ??= []).push(...raw[i + 1]!.toLowerCase().split(',').map((s) => s.trim()))
  }
  let lines = ''
  let contentLength: string | null = null
  let chunked = false
  let keepAliveMs: number | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const k = name.toLowerCase()
    if (k === 'content-length') contentLength = raw[i + 1]!
    else if (k === 'transfer-encoding') chunked = raw[i + 1]!.toLowerCase().includes('chunked')
    else if (k === 'keep-alive') {
      const m = /timeout=(\d+)/i.exec(raw[i + 1]!)
      if (m) keepAliveMs = Number(m[1]) * 1000
    }
    if (HOP_BY_HOP.has(k) || k === 'content-length' || (named !== null && named.includes(k)) || (drop !== null && drop.has(k)) || (dropOwned && isSidecarOwnedHeader(k))) continue
    lines += `${name}: ${raw[i + 1]}\r\n`
  }
  return { lines, contentLength, chunked, keepAliveMs }
}

/** Trailer lines (a chunked body's last part), without hop-by-hop fields. */
export function trailerLines(raw: readonly string[]): string {
  let out = ''
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    if (HOP_BY_HOP.has(k) || k === 'content-length') continue
    out += `${raw[i]}: ${raw[i + 1]}\r\n`
  }
  return out
}

const CRLF = Buffer.from('\r\n')

/** One chunk of a chunked body: size line, data, CRLF (as three writes' worth of buffers). */
export function chunkFrame(data: Buffer): Buffer[] {
  return [Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, CRLF]
}
