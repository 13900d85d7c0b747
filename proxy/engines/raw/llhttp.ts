import { createRequire } from 'node:module'

// Node's own llhttp binding, the parser node:http runs on (strict: CL+TE, duplicate CL, obs-fold,
// bad chunks and bad tokens are refused with HPE_* codes). It is reachable only through the
// internal `_http_common` module, so it is typed here, once, with the members we use.

/** A parser error as `execute()` returns it (not throws it). */
export interface ParseError extends Error {
  readonly code: string
  readonly bytesParsed: number
  readonly reason?: string
}

export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number

export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void
  /** Bytes consumed (less than the input after an upgrade), or the parse error. */
  execute(data: Buffer): number | ParseError
  /** End of input: completes a read-until-close body, or reports a truncated message. */
  finish(): ParseError | undefined
  close(): void
  [key: number]: unknown
}

interface HttpCommon {
  HTTPParser: {
    new (): Parser
    readonly REQUEST: number
    readonly RESPONSE: number
    readonly kOnMessageBegin: number
    readonly kOnHeaders: number
    readonly kOnHeadersComplete: number
    readonly kOnBody: number
    readonly kOnMessageComplete: number
    readonly kLenientNone: number
  }
  readonly methods: readonly string[]
}

function load(): HttpCommon | null {
  try {
    const m = createRequire(import.meta.url)('node:_http_common') as Partial<HttpCommon>
    const P = m.HTTPParser
    if (typeof P !== 'function' || !Array.isArray(m.methods) || typeof P.kOnHeadersComplete !== 'number') return null
    return m as HttpCommon
  } catch {
    return null
  }
}

const common = load()

/** Why the raw engine cannot run on this Node, or null when it can. */
export function rawEngineUnavailable(): string | null {
  return common === null ? `node:_http_common.HTTPParser is not available in Node ${process.version}` : null
}

function need(): HttpCommon {
  if (common === null) throw new Error(rawEngineUnavailable()!)
  return common
}

/** llhttp's method numbers → names (the `method` argument of onHeadersComplete). */
export const METHODS: readonly string[] = common?.methods ?? []

export interface ParserCallbacks {
  /** The first byte of a message (llhttp's on_message_begin): a request head has started. */
  onMessageBegin?(): void
  /** Header pairs beyond the first flush, and the URL so far (node's parserOnHeaders). */
  onHeaders(headers: string[], url: string): void
  onHeadersComplete: OnHeadersComplete
  onBody(chunk: Buffer): void
  onMessageComplete(): void
}

/** A fresh parser for one connection; `maxHeaderSize` bounds the head (HPE_HEADER_OVERFLOW). */
export function createParser(kind: 'request' | 'response', maxHeaderSize: number, cb: ParserCallbacks): Parser {
  const { HTTPParser } = need()
  const p = new HTTPParser()
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, HTTPParser.kLenientNone)
  if (cb.onMessageBegin !== undefined) p[HTTPParser.kOnMessageBegin] = cb.onMessageBegin
  p[HTTPParser.kOnHeaders] = cb.onHeaders
  p[HTTPParser.kOnHeadersComplete] = cb.onHeadersComplete
  p[HTTPParser.kOnBody] = cb.onBody
  p[HTTPParser.kOnMessageComplete] = cb.onMessageComplete
  return p
}

/** Frees the native parser once the current call stack (maybe inside `execute`) has unwound. */
export function closeParser(p: Parser): void {
  setImmediate(() => p.close())
}
