// Request-target normalization, done once per request before anything looks at the path.
// Modes follow Istio's meshConfig.pathNormalization (BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES);
// remora's default is MERGE_SLASHES with escaped "/" and "\" rejected, which closes the "//admin"
// and "%2F" bypasses that Istio's BASE default leaves open.
export type PathNormalization = 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES'
export const PATH_NORMALIZATIONS: readonly PathNormalization[] = ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']
export const DEFAULT_PATH_NORMALIZATION: PathNormalization = 'MERGE_SLASHES'

export type NormalizedTarget =
  | { ok: true; path: string; query: string }
  | { ok: false; reason: string }

const HEX = '0123456789ABCDEF'

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

function isUnreserved(b: number): boolean {
  return (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b === 45 || b === 46 || b === 95 || b === 126
}

/** The byte of the escape at `at` (`%XY`), or -1. */
function escapeAt(raw: string, at: number): number {
  if (at + 2 >= raw.length || raw.charCodeAt(at) !== 37) return -1
  const h = hexVal(raw.charCodeAt(at + 1))
  const l = hexVal(raw.charCodeAt(at + 2))
  return h < 0 || l < 0 ? -1 : h * 16 + l
}

/**
 * An overlong UTF-8 form (a lead byte and the escape after it): C0/C1 + any continuation byte,
 * E0 + 80-9F, F0 + 80-8F. These only ever spell ASCII the long way (%C0%80 is NUL, %C0%AE ".",
 * %C0%AF "/"): what a lenient decoder behind the sidecar would turn into a path nobody matched.
 * Valid UTF-8 and lone Latin-1 bytes are not affected.
 */
function isOverlong(lead: number, raw: string, next: number): boolean {
  if (lead !== 0xc0 && lead !== 0xc1 && lead !== 0xe0 && lead !== 0xf0) return false
  const n = escapeAt(raw, next)
  if (n < 0x80) return false
  return lead <= 0xc1 ? n <= 0xbf : lead === 0xe0 ? n <= 0x9f : n <= 0x8f
}

/**
 * Normalize an origin-form request target (`/a/./b?x=1#f`).
 * - the fragment is dropped and the query is split off (never part of the matched path);
 * - percent-encoded unreserved characters are decoded, other escapes are upper-cased (RFC 3986 §6.2.2);
 * - `\` becomes `/` (as Envoy/Istio BASE does);
 * - `%00`-`%1F`, `%7F` and overlong UTF-8 escapes are refused in every mode (issue 13);
 * - nothing is decoded twice: `%2500` stays `%2500` (the app gets exactly the bytes authz matched);
 * - `%2F`/`%5C`: kept (BASE), rejected (MERGE_SLASHES, remora's choice), decoded (DECODE_AND_MERGE_SLASHES);
 * - dot-segments are removed (RFC 3986 §5.2.4), including encoded ones (`%2e%2e`);
 * - runs of `/` are merged unless the mode is BASE.
 */
export function normalizePath(target: string, mode: PathNormalization = DEFAULT_PATH_NORMALIZATION): NormalizedTarget {
  let end = target.length
  const hash = target.indexOf('#')
  if (hash !== -1) end = hash
  const q = target.indexOf('?')
  let query = ''
  if (q !== -1 && q < end) {
    query = target.slice(q, end)
    end = q
  }
  const raw = target.slice(0, end)
  if (raw.length === 0 || raw.charCodeAt(0) !== 47 /* / */) return { ok: false, reason: 'path must start with "/"' }

  let decoded = ''
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 37 /* % */) {
      const h = i + 2 < raw.length ? hexVal(raw.charCodeAt(i + 1)) : -1
      const l = i + 2 < raw.length ? hexVal(raw.charCodeAt(i + 2)) : -1
      if (h < 0 || l < 0) return { ok: false, reason: 'invalid percent-encoding in path' }
      const b = h * 16 + l
      i += 2
      // An escaped control character means something else to whoever decodes it (a C string ends
      // at NUL, a header or log writer splits at CR LF): refused, as Envoy refuses %00.
      if (b < 0x20 || b === 0x7f) return { ok: false, reason: 'percent-encoded control character (%00-%1F, %7F) in path' }
      if (b >= 0xc0 && isOverlong(b, raw, i + 1)) return { ok: false, reason: 'overlong UTF-8 sequence (%C0%80-style) in path' }
      if (isUnreserved(b)) decoded += String.fromCharCode(b)
      else if (b === 0x2f || b === 0x5c) {
        if (mode === 'DECODE_AND_MERGE_SLASHES') decoded += '/'
        else if (mode === 'MERGE_SLASHES') return { ok: false, reason: 'escaped slash or backslash (%2F, %5C) in path' }
        else decoded += '%' + HEX[h]! + HEX[l]!
      } else decoded += '%' + HEX[h]! + HEX[l]!
    } else if (c === 92 /* \ */) decoded += '/'
    else if (c <= 0x20 || c === 0x7f) return { ok: false, reason: 'control character or space in path' }
    else decoded += raw[i]!
  }

  let path = removeDotSegments(decoded)
  if (mode !== 'BASE' && path.includes('//')) path = path.replace(/\/{2,}/g, '/')
  return { ok: true, path, query }
}

/** RFC 3986 §5.2.4 on an absolute path, segment-wise. */
function removeDotSegments(path: string): string {
  if (!path.includes('.')) return path
  const segs = path.split('/')
  const out: string[] = []
  // segs[0] is '' (leading slash)
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!
    const last = i === segs.length - 1
    if (s === '.') {
      if (last) out.push('')
    } else if (s === '..') {
      out.pop()
      if (last) out.push('')
    } else out.push(s)
  }
  return '/' + out.join('/')
}
