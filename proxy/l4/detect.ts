// Protocol detection on a connection's first bytes: HTTP/1.x (a method token and a space), the
// HTTP/2 connection preface (RFC 9113 §3.4), a TLS ClientHello (RFC 8446 §4.1.2; its SNI and ALPN
// read without terminating it), or anything else (opaque TCP). Pure functions over a Buffer.

export type Detected = 'http1' | 'h2' | 'tls' | 'tcp'

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
const MAX_METHOD = 24

/** 'more' when the bytes so far could still be more than one protocol. */
export function detect(b: Buffer): Detected | 'more' {
  if (b.length === 0) return 'more'
  if (b[0] === 0x16) {
    if (b.length < 3) return 'more'
    return b[1] === 0x03 ? 'tls' : 'tcp'
  }
  // h2 preface: "PRI * HTTP/2.0…"; compare as far as we have
  const n = Math.min(b.length, H2_PREFACE.length)
  if (b.compare(H2_PREFACE, 0, n, 0, n) === 0) return n === H2_PREFACE.length ? 'h2' : 'more'
  // HTTP/1: a whole request line, METHOD SP request-target SP HTTP/1.x CRLF (as Envoy's
  // http_inspector parses it); a line protocol whose first word is upper-case is not HTTP.
  for (let i = 0; i < b.length && i <= MAX_METHOD; i++) {
    const c = b[i]!
    if (c === 0x20) {
      if (i === 0) return 'tcp'
      return requestLine(b, i + 1)
    }
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f)) return 'tcp'
  }
  return b.length > MAX_METHOD ? 'tcp' : 'more'
}

/** The request line is read up to this many bytes; a longer one is HTTP's problem (414), not detection's. */
const MAX_REQUEST_LINE = 16 * 1024
const HTTP1_VERSION = /^HTTP\/1\.[01]\r?$/

function requestLine(b: Buffer, targetStart: number): Detected | 'more' {
  const lf = b.indexOf(0x0a, targetStart)
  if (lf === -1) {
    // the target so far must be visible characters
    for (let i = targetStart; i < b.length; i++) {
      const c = b[i]!
      if (c === 0x20) {
        // past the target: what follows must be able to become "HTTP/1.x"
        const tail = b.subarray(i + 1).toString('latin1')
        return 'HTTP/1.1'.startsWith(tail.slice(0, 7)) || tail.length === 0 ? (b.length >= MAX_REQUEST_LINE ? 'http1' : 'more') : 'tcp'
      }
      if (c < 0x21 || c > 0x7e) return 'tcp'
    }
    return b.length >= MAX_REQUEST_LINE ? 'http1' : 'more'
  }
  const line = b.subarray(targetStart, lf).toString('latin1')
  const sp = line.indexOf(' ')
  if (sp <= 0) return 'tcp'
  return HTTP1_VERSION.test(line.slice(sp + 1)) ? 'http1' : 'tcp'
}

export interface ClientHello {
  /** server_name (host_name), lower-cased; null when absent. */
  readonly sni: string | null
  readonly alpn: readonly string[]
}

/**
 * The SNI and ALPN of a ClientHello at the start of `b`: 'more' while the first handshake record is
 * incomplete, null when the bytes are not a well-formed ClientHello. Reads only the first record
 * (ClientHellos fit in one: 16 KiB; a larger one, as a post-quantum key share could make, is read
 * as far as its extensions go).
 */
export function parseClientHello(b: Buffer): ClientHello | 'more' | null {
  if (b.length < 5) return 'more'
  if (b[0] !== 0x16 || b[1] !== 0x03) return null
  const recLen = b.readUInt16BE(3)
  if (recLen < 4 || recLen > 16_384 + 2048) return null
  if (b.length < 5 + recLen) return 'more'
  const r = b.subarray(5, 5 + recLen)
  if (r[0] !== 0x01) return null // handshake type client_hello
  const hsLen = (r[1]! << 16) | (r[2]! << 8) | r[3]!
  const body = r.subarray(4, 4 + Math.min(hsLen, r.length - 4))
  let p = 2 + 32 // legacy_version, random
  if (p + 1 > body.length) return null
  p += 1 + body[p]! // session id
  if (p + 2 > body.length) return null
  p += 2 + body.readUInt16BE(p) // cipher suites
  if (p + 1 > body.length) return null
  p += 1 + body[p]! // compression methods
  if (p + 2 > body.length) return { sni: null, alpn: [] } // no extensions
  const extEnd = Math.min(body.length, p + 2 + body.readUInt16BE(p))
  p += 2
  let sni: string | null = null
  const alpn: string[] = []
  while (p + 4 <= extEnd) {
    const type = body.readUInt16BE(p)
    const len = body.readUInt16BE(p + 2)
    const e = body.subarray(p + 4, Math.min(extEnd, p + 4 + len))
    p += 4 + len
    if (type === 0x0000 && e.length >= 5) {
      // server_name_list: u16 len, then (type u8, u16 len, name)
      let q = 2
      while (q + 3 <= e.length) {
        const t = e[q]!
        const l = e.readUInt16BE(q + 1)
        if (t === 0 && q + 3 + l <= e.length) {
          const name = e.subarray(q + 3, q + 3 + l).toString('latin1')
          if (!/^[A-Za-z0-9._-]{1,253}$/.test(name)) return null
          sni = name.toLowerCase()
          break
        }
        q += 3 + l
      }
    } else if (type === 0x0010 && e.length >= 2) {
      let q = 2
      while (q < e.length) {
        const l = e[q]!
        alpn.push(e.subarray(q + 1, q + 1 + l).toString('latin1'))
        q += 1 + l
      }
    }
  }
  return { sni, alpn }
}

/**
 * Detection for a connection made to the listener itself (no original destination): it can only be
 * HTTP/1.x, h2c or TLS, so anything but a TLS record or a leading 'P' (PRI…, or PUT/POST/PATCH) is
 * HTTP/1.x at its first byte and goes to the HTTP front, whose limits then apply.
 */
export function detectDirect(b: Buffer): Detected | 'more' {
  if (b.length === 0) return 'more'
  if (b[0] === 0x16) return 'tls'
  // 'P': PRI (h2) or PUT/POST/PATCH: the first byte that differs from the preface decides
  const n = Math.min(b.length, H2_PREFACE.length)
  for (let i = 0; i < n; i++) if (b[i] !== H2_PREFACE[i]) return 'http1'
  return n === H2_PREFACE.length ? 'h2' : 'more'
}
