// A seeded, grammar-based mutational generator of HTTP/1.1 request bytes for the front-door fuzzer.
// Every input is a pure function of (run seed, engine, front, index): `createRng` derives a fresh
// generator per execution, so one input can be replayed alone (REMORA_FUZZ_CASE) without running
// the ones before it. No feedback from the target changes what is generated: the run is
// deterministic whatever the timing of the machine.
import { SEEDS } from './seeds.js'

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
  pick<T>(items: readonly T[]): T
  chance(p: number): boolean
}

/** FNV-1a over the keys' text, then splitmix32 → sfc32's four words. */
export function createRng(...keys: readonly (string | number)[]): Rng {
  let h = 0x811c9dc5
  for (const ch of keys.join('\u0000')) {
    h ^= ch.charCodeAt(0)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  const split = (): number => {
    h = (h + 0x9e3779b9) | 0
    let z = h
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
  let a = split()
  let b = split()
  let c = split()
  let d = split()
  const next = (): number => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    const t = (a + b + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  for (let i = 0; i < 12; i++) next()
  const rng: Rng = {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
  }
  return rng
}

/** One generated input: the bytes (written in `chunks`, one write each), and what made it. */
export interface FuzzInput {
  readonly chunks: readonly Buffer[]
  /** The strategies applied, e.g. `grammar×2+bytes` (finding signatures and the report use it). */
  readonly kind: string
  /**
   * Facts known from the grammar when no byte-level mutation touched a single request: headers the
   * request's own Connection header names (they must not reach the app).
   */
  readonly connectionNamed: readonly string[]
}

/** Binary string (one char per byte) → bytes. */
export const bin = (s: string): Buffer => Buffer.from(s, 'latin1')

const CTL = (): string[] => Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).concat('\x7f')
const HEX2 = (b: number, lower = false): string => {
  const s = b.toString(16).padStart(2, '0')
  return '%' + (lower ? s : s.toUpperCase())
}

const METHODS = ['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE', 'PRI', 'QUERY', 'PROPFIND', 'M-SEARCH', 'SOURCE', 'get', 'GeT', 'G\x00T', 'GET\t', 'POST ', 'X-CUSTOM', '\x80GET', '']
const BASE_PATHS = ['/', '/ok', '/public/a.png', '/admin', '/admin', '/admin/', '/admin/users', '/adminx', '/api/v1/items?id=1']
const ABSOLUTE = ['http://payments', 'HTTP://payments:80', 'http://payments:15006', 'https://payments', 'http://evil@payments', 'http://[::1]', 'http://payments?', 'ftp://payments', 'http:']
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/1.0', 'HTTP/0.9', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/3', 'http/1.1', 'HTTP/11', 'HTTP/1.1 ', 'HTTP/1.1\x00', 'HTTP/ 1.1', 'HTTP/1.01', 'HTTP/9.9', '']
const EOLS = ['\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', '\r\r\n', '\n\r']
const HOSTS = ['payments', 'payments', 'payments', 'payments:15006', 'PAYMENTS', 'payments.', 'payments.shop', '', 'evil', 'payments@evil', 'evil@payments', 'payments:99999', 'payments:0x50', 'pay ments', 'payments\x00.evil', '[::1]:80', '[::1', 'payments:', ':80', 'payments, evil', '\u00e9vil', '127.0.0.1']
const USERS = ['mallory', 'alice', 'Mallory', ' mallory', 'mallory ', 'alice,mallory', 'alice, mallory', 'mallory,alice', 'mal lory', 'mallory\x00', '"mallory"', 'mallory\t']
const INTERNAL = ['x-remora-denied-by', 'x-remora-trace', 'x-remora-peer', 'X-Remora-Response-Flags', 'x-remora-error-code', 'x-envoy-original-path', 'x-envoy-internal', 'X-Envoy-Peer-Metadata', 'x-envoy-expected-rq-timeout-ms', 'x-envoy-decorator-operation']
const CL_VALUES = ['0', '1', '5', '10', '64', ' 5', '5 ', '+5', '-1', '0x5', '5,5', '5, 6', '05', '99999999999999999999', '1e3', '5\x00', '', '4294967296']
const TE_VALUES = ['chunked', 'chunked', 'chunked', 'Chunked', 'CHUNKED', 'chunked, chunked', 'gzip, chunked', 'chunked, gzip', 'identity', ' chunked', 'chunked\x00', 'chunk', 'x chunked', 'chunked;q=1', '\x0bchunked']
const SMUGGLED = 'GET /admin HTTP/1.1\r\nHost: payments\r\nx-user: mallory\r\n\r\n'

function randomBytes(rng: Rng, n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.int(256))
  return s
}

function token(rng: Rng): string {
  const alpha = 'abcdefghijklmnopqrstuvwxyz-0123456789'
  let s = 'x-'
  const n = 1 + rng.int(10)
  for (let i = 0; i < n; i++) s += alpha[rng.int(alpha.length)]
  return s
}

/** Path mutations: encodings, dot-segments, control characters, slashes, case, absolute-form, `*`. */
function target(rng: Rng): string {
  let t = rng.pick(BASE_PATHS)
  const n = rng.int(4)
  for (let k = 0; k < n; k++) {
    const at = 1 + rng.int(Math.max(1, t.length))
    const ins = (s: string): void => void (t = t.slice(0, at) + s + t.slice(at))
    switch (rng.int(17)) {
      case 0:
        ins(rng.pick(['./', '../', 'x/../', '%2e%2e/', '.%2E/', '%2e/', '..;/', '.../', '..%2f', '..\\']))
        break
      case 1:
        ins('/'.repeat(1 + rng.int(3)))
        break
      case 2: {
        // percent-encode one character of the path (upper or lower hex)
        const i = rng.int(t.length)
        t = t.slice(0, i) + HEX2(t.charCodeAt(i), rng.chance(0.5)) + t.slice(i + 1)
        break
      }
      case 3: {
        const c = rng.pick([0, 0, 0x0a, 0x0d, 0x09, 0x1f, 0x7f, 1 + rng.int(31)])
        ins(HEX2(c, rng.chance(0.3)))
        break
      }
      case 4:
        ins(rng.pick(['%0d%0aSet-Cookie:%20x=1', '%0D%0A', '%00.png', '%00', '%0a']))
        break
      case 5:
        ins(rng.pick(['%2F', '%2f', '%5C', '%5c', '\\', '%252F', '%25', '%', '%g0', '%2']))
        break
      case 6:
        ins(rng.pick(CTL()))
        break
      case 7:
        ins(rng.pick(['\u00e9', '\u00ff', '\u0080', '%C0%AF', '%E2%80%AE', '%FF', ' ', '\t', '"', '<', '{', '|', '^', '`']))
        break
      case 8:
        t = t.replace('admin', rng.pick(['ADMIN', 'Admin', 'admiN', '%61dmin', 'adm%69n', 'a%64min', 'admin;x', 'admin.', 'admin%20']))
        break
      case 9:
        ins(rng.pick(['?', '?a=%00', '?x=/admin', '#', '#/../admin', '?#', '&', ';']))
        break
      case 10:
        t = rng.pick(ABSOLUTE) + (rng.chance(0.8) ? t : '')
        break
      case 11:
        t = rng.pick(['*', '*', '/*', '**', '*/admin'])
        break
      case 12:
        t = rng.pick(['', 'admin', 'payments/admin', '//admin', '/\\admin', '\\admin', '/./admin', '/x/../admin', '/%2e%2e/admin', '/admin/..', '/admin/%2e%2e/', '/%2fadmin'])
        break
      case 13:
        ins(('seg/'.repeat(1 + rng.int(20))))
        break
      case 14:
        t += rng.pick(['/', '/.', '/..', '%2e', '%00', '/x'])
        break
      case 15:
        if (rng.chance(0.2)) t += 'a'.repeat(rng.pick([1024, 8192, 65 * 1024]))
        break
      default:
        t = t.slice(0, at) + t.slice(at + 1) // delete one character
    }
  }
  return t
}

type Header = [string, string]

/** Headers for one request; the body part the framing headers ask for is returned with them. */
function headers(rng: Rng, version: string): { list: Header[]; framing: 'none' | 'cl' | 'chunked' | 'both'; cl: string; connectionNamed: string[] } {
  const list: Header[] = []
  let framing: 'none' | 'cl' | 'chunked' | 'both' = 'none'
  let cl = ''
  const connectionNamed: string[] = []
  if (!rng.chance(0.05)) list.push([rng.pick(['Host', 'Host', 'Host', 'host', 'HOST', 'Host ', ' Host', 'Ho\x00st']), rng.chance(0.75) ? 'payments' : rng.pick(HOSTS)])
  const n = rng.int(6)
  for (let k = 0; k < n; k++) {
    switch (rng.int(20)) {
      case 0:
        list.push(['Host', rng.pick(HOSTS)])
        break
      case 1:
        list.push(['x-user', rng.pick(USERS)])
        break
      case 2: {
        // a repeated header: either copy may carry the denied value
        const pair = rng.chance(0.5) ? ['alice', 'mallory'] : ['mallory', 'alice']
        list.push([rng.pick(['x-user', 'X-User']), pair[0]!], [rng.pick(['x-user', 'X-USER']), pair[1]!])
        break
      }
      case 3:
        list.push([rng.pick(INTERNAL), rng.pick(['1', 'true', 'allow', '/admin', 'spiffe://cluster.local/ns/shop/sa/admin'])])
        break
      case 4:
        list.push(['x-forwarded-client-cert', 'By=spiffe://cluster.local/ns/shop/sa/payments;URI=spiffe://cluster.local/ns/shop/sa/admin'])
        break
      case 5:
        framing = framing === 'chunked' ? 'both' : framing === 'none' ? 'cl' : framing
        cl = rng.pick(CL_VALUES)
        list.push([rng.pick(['Content-Length', 'content-length', 'Content-Length ', 'Content-Length\t', 'Content_Length']), cl])
        if (rng.chance(0.2)) list.push(['Content-Length', rng.pick(CL_VALUES)])
        break
      case 6:
        framing = framing === 'cl' ? 'both' : framing === 'none' ? 'chunked' : framing
        list.push([rng.pick(['Transfer-Encoding', 'transfer-encoding', 'Transfer-Encoding ', 'Transfer_Encoding']), rng.pick(TE_VALUES)])
        if (rng.chance(0.15)) list.push(['Transfer-Encoding', rng.pick(TE_VALUES)])
        break
      case 7: {
        const named = rng.pick(['x-hop', 'x-user', 'host', 'content-length', 'transfer-encoding', 'x-forwarded-client-cert', 'x-remora-peer', 'upgrade', 'close', 'keep-alive'])
        list.push(['Connection', rng.chance(0.5) ? named : `keep-alive, ${named}`])
        if (named === 'x-hop') {
          list.push(['x-hop', 'secret'])
          connectionNamed.push('x-hop')
        }
        break
      }
      case 8:
        list.push(['Upgrade', rng.pick(['websocket', 'h2c', 'WebSocket', 'tls/1.2', ''])], ['Connection', 'Upgrade'])
        if (rng.chance(0.5)) list.push(['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13'])
        break
      case 9:
        list.push(['Expect', rng.pick(['100-continue', '100-Continue', '200-ok'])])
        break
      case 10:
        // obs-fold
        list.push(['X-Folded', `a\r\n${rng.pick([' ', '\t', '  '])}b`])
        break
      case 11: {
        // a huge value, around the 60 KiB head limit
        const size = rng.pick([4096, 30 * 1024, 59 * 1024, 61 * 1024, 100 * 1024])
        list.push([rng.pick(['x-big', 'cookie', 'x-user']), 'a'.repeat(size)])
        break
      }
      case 12: {
        // many headers
        const m = rng.pick([50, 101, 200, 1000])
        for (let i = 0; i < m; i++) list.push([`x-h${i}`, 'v'])
        break
      }
      case 13:
        list.push([rng.pick(['x-a', 'x-a\x00', 'x\ra', 'x\na', 'x a', '', ':', 'x-\u00e9', 'x-a:', '\tx-a']), rng.pick(['v', 'v\x00w', 'v\rw', 'v\nw', 'v\r\nx-user: mallory', 'D\u00fcsseldorf', '\x7f', '\x01', ''])])
        break
      case 14:
        list.push([rng.pick(['Keep-Alive', 'Proxy-Connection', 'TE', 'Trailer', 'Proxy-Authorization']), rng.pick(['timeout=5', 'keep-alive', 'trailers', 'x-user', 'Basic Zm9vOmJhcg=='])])
        break
      case 15:
        list.push(['traceparent', rng.pick(['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'garbage', '00-' + '0'.repeat(32) + '-' + '0'.repeat(16) + '-01', 'ff-' + 'a'.repeat(200)])])
        break
      case 16:
        list.push(['x-request-id', rng.pick(['abc', 'a'.repeat(200), '\u00e9', ''])])
        break
      case 17:
        list.push(['Authorization', rng.pick(['Bearer x.y.z', 'Bearer ', 'Basic YTpi'])])
        break
      default:
        list.push([token(rng), rng.chance(0.8) ? 'v' : randomBytes(rng, 1 + rng.int(8))])
    }
  }
  if (framing === 'none' && version !== 'HTTP/1.1' && rng.chance(0.1)) {
    framing = 'chunked'
    list.push(['Transfer-Encoding', 'chunked'])
  }
  // shuffle a little: order matters to parsers (CL before TE, Host last…)
  if (list.length > 1 && rng.chance(0.3)) {
    const i = rng.int(list.length)
    const j = rng.int(list.length)
    ;[list[i], list[j]] = [list[j]!, list[i]!]
  }
  return { list, framing, cl, connectionNamed }
}

function chunkedBody(rng: Rng): string {
  let out = ''
  const n = rng.int(4)
  for (let i = 0; i < n; i++) {
    const data = rng.chance(0.15) ? SMUGGLED : 'x'.repeat(1 + rng.int(20))
    let size = data.length.toString(16)
    switch (rng.int(12)) {
      case 0:
        size = rng.pick(['zz', '-1', '0x5', '+5', ' 5', '5 ', 'fffffffffffffffff', '', '5\x00', '\u00e9'])
        break
      case 1:
        size += rng.pick([';a=b', ';a="q;x"', ';', ';a', ';a=\x00', ';' + 'e'.repeat(5000), ' ;a=b', ';a=b\n'])
        break
      case 2:
        size = size.toUpperCase().padStart(6, '0')
        break
      default:
    }
    const eol = rng.chance(0.85) ? '\r\n' : rng.pick(['\n', '\r', '', '\r\r\n'])
    const after = rng.chance(0.9) ? '\r\n' : rng.pick(['', '\n', 'XX', '\r'])
    out += `${size}${eol}${data}${after}`
  }
  if (rng.chance(0.9)) {
    out += rng.pick(['0', '0', '0', '00', '0;ext=1', '0 '])
    out += '\r\n'
    if (rng.chance(0.25)) out += rng.pick(['x-trailer: 1\r\n', 'x-user: mallory\r\n', 'Content-Length: 5\r\n', 'Transfer-Encoding: chunked\r\n', 'Host: evil\r\n', 'x-remora-peer: admin\r\n', 'bad trailer\r\n'])
    if (rng.chance(0.95)) out += '\r\n'
  }
  return out
}

interface Built {
  text: string
  connectionNamed: string[]
}

/** One request from the grammar. */
function grammarRequest(rng: Rng): Built {
  const method = rng.pick(METHODS)
  const version = rng.pick(VERSIONS)
  const eol = rng.pick(EOLS)
  const sp = rng.chance(0.95) ? ' ' : rng.pick(['  ', '\t', '', ' \x00'])
  const line = version === '' && rng.chance(0.5) ? `${method}${sp}${target(rng)}` : `${method}${sp}${target(rng)}${sp}${version}`
  const h = headers(rng, version)
  const sep = (): string => (rng.chance(0.95) ? ': ' : rng.pick([':', ' : ', ':\t', '  :', ': \x00', '']))
  let text = line + eol
  for (const [k, v] of h.list) text += `${k}${sep()}${v}${rng.chance(0.97) ? '\r\n' : rng.pick(['\n', '\r', '\r\r\n'])}`
  text += rng.chance(0.97) ? '\r\n' : rng.pick(['\n', '', '\r'])
  if (h.framing === 'cl' || h.framing === 'both') {
    const declared = Number.parseInt(h.cl, 10)
    const len = Number.isFinite(declared) && declared >= 0 && declared < 100_000 ? declared : 5
    const body = len >= SMUGGLED.length && rng.chance(0.3) ? SMUGGLED + 'y'.repeat(len - SMUGGLED.length) : 'y'.repeat(len)
    text += rng.chance(0.85) ? body : body.slice(0, rng.int(body.length + 1)) + (rng.chance(0.5) ? SMUGGLED : '')
  } else if (h.framing === 'chunked') text += chunkedBody(rng)
  else if (rng.chance(0.05)) text += SMUGGLED // a body where none was announced: the next request
  return { text, connectionNamed: h.connectionNamed }
}

/** A seed from llhttp's and Node's test suites, often given a Host and pointed at /admin. */
function seedRequest(rng: Rng): string {
  let s = rng.pick(SEEDS)[1]
  if (rng.chance(0.3)) s = s.replace(/ \/[^ \r\n]*/, ` ${rng.pick(['/admin', '/admin/x', '//admin', '/admin%00', '/ok'])}`)
  if (!/\r?\nhost:/i.test(s) && rng.chance(0.8)) {
    const eol = s.search(/\r?\n/)
    if (eol !== -1) s = s.slice(0, eol) + '\r\nHost: payments' + s.slice(eol)
  }
  if (rng.chance(0.2)) {
    const eol = s.search(/\r?\n/)
    if (eol !== -1) s = s.slice(0, eol) + `\r\nx-user: ${rng.pick(USERS)}` + s.slice(eol)
  }
  return s
}

/** Byte-level mutations: flip, insert, delete, duplicate, splice a seed. */
function mutateBytes(rng: Rng, s: string): string {
  const n = 1 + rng.int(3)
  for (let k = 0; k < n; k++) {
    const at = rng.int(s.length + 1)
    switch (rng.int(7)) {
      case 0:
        if (s.length > 0) s = s.slice(0, at) + String.fromCharCode(rng.int(256)) + s.slice(at + 1)
        break
      case 1:
        s = s.slice(0, at) + rng.pick(['\x00', '\r', '\n', '\r\n', ' ', '\t', ':', ',', ';', '%', '\u00ff', '\x7f', '\r\n\r\n', 'x-user: mallory\r\n', 'Content-Length: 0\r\n', 'Transfer-Encoding: chunked\r\n']) + s.slice(at)
        break
      case 2:
        s = s.slice(0, at) + s.slice(at + 1 + rng.int(8))
        break
      case 3: {
        const len = 1 + rng.int(40)
        s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at)
        break
      }
      case 4: {
        const other = rng.pick(SEEDS)[1]
        const from = rng.int(other.length)
        s = s.slice(0, at) + other.slice(from, from + 1 + rng.int(60)) + s.slice(at)
        break
      }
      case 5:
        s = s.slice(0, at) + randomBytes(rng, 1 + rng.int(16)) + s.slice(at)
        break
      default:
        s = s.replace(/\r\n/, rng.pick(['\n', '\r', '\r\n\r\n', '\r\n ']))
    }
  }
  return s
}

/** Splits the input into 1–4 writes: the parsers must resume at any boundary. */
function split(rng: Rng, s: string): Buffer[] {
  const b = bin(s)
  if (b.length < 2 || rng.chance(0.6)) return [b]
  const cuts = [...new Set(Array.from({ length: 1 + rng.int(3) }, () => 1 + rng.int(b.length - 1)))].sort((x, y) => x - y)
  const out: Buffer[] = []
  let prev = 0
  for (const c of cuts) {
    out.push(b.subarray(prev, c))
    prev = c
  }
  out.push(b.subarray(prev))
  return out
}

/** One input for execution `rng` (a fresh generator per execution). */
export function generate(rng: Rng): FuzzInput {
  const strategy = rng.next()
  let text: string
  let kind: string
  let connectionNamed: string[] = []
  if (strategy < 0.45) {
    // grammar, sometimes pipelined
    const count = rng.chance(0.75) ? 1 : 2 + rng.int(3)
    const reqs = Array.from({ length: count }, () => grammarRequest(rng))
    text = reqs.map((r) => r.text).join(rng.chance(0.9) ? '' : '\r\n')
    kind = count === 1 ? 'grammar' : `grammar×${count}`
    if (count === 1) connectionNamed = reqs[0]!.connectionNamed
  } else if (strategy < 0.7) {
    text = seedRequest(rng)
    kind = 'seed'
    if (rng.chance(0.7)) {
      text = mutateBytes(rng, text)
      kind += '+bytes'
    }
  } else if (strategy < 0.8) {
    // a valid head, then random bytes
    text = `${rng.pick(['GET', 'POST', 'PUT'])} ${rng.pick(['/ok', '/admin', '/x'])} HTTP/1.1\r\nHost: payments\r\n${rng.chance(0.5) ? 'Content-Length: 8\r\n' : ''}\r\n` + randomBytes(rng, 1 + rng.int(256))
    kind = 'head+random'
  } else if (strategy < 0.9) {
    // truncation at any point of a grammar or seed input
    const full = rng.chance(0.5) ? grammarRequest(rng).text : seedRequest(rng)
    text = full.slice(0, rng.int(full.length + 1))
    kind = 'truncated'
  } else {
    text = mutateBytes(rng, grammarRequest(rng).text)
    kind = 'grammar+bytes'
  }
  return { chunks: split(rng, text), kind, connectionNamed }
}

/** An input as an escaped, readable string (for finding reports), cut at `max` characters. */
export function show(input: FuzzInput | string, max = 600): string {
  const s = typeof input === 'string' ? input : Buffer.concat(input.chunks).toString('latin1')
  const esc = JSON.stringify(s.length > max ? s.slice(0, max) : s).replace(/[\u007f-\u00ff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
  return s.length > max ? `${esc}… (${s.length} bytes)` : esc
}
