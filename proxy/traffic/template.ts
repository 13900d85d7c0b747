import { TRAFFIC_LIMITS } from '../snapshot/index.js'

// pathTemplate() of the wire contract (proxy/snapshot/traffic.ts), in one pass over the characters
// for the hot path: no split, no regex, and no new string when nothing is replaced (most paths).
// test/unit/traffic/template.test.ts keeps it equal to pathTemplate() on generated paths.

const SLASH = 47
const AT = 64

/** Whether the segment path[from, to) is an identifier by the contract's ID_SEGMENT patterns. */
function isIdSegment(path: string, from: number, to: number): boolean {
  const len = to - from
  if (len === 0) return false
  let digits = 0
  let alphas = 0
  let ats = 0
  let atPos = -1
  let allHex = true
  let allToken = true // [A-Za-z0-9_-]
  let allMixed = true // [A-Za-z0-9._~-]
  for (let k = from; k < to; k++) {
    const c = path.charCodeAt(k)
    if (c >= 48 && c <= 57) digits++
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) {
      alphas++
      if (!((c >= 65 && c <= 70) || (c >= 97 && c <= 102))) allHex = false
    } else {
      allHex = false
      if (c === 95 || c === 45) {
        // _ and - are token and mixed characters
      } else if (c === 46 || c === 126) allToken = false
      else {
        allToken = false
        allMixed = false
        if (c === AT) {
          ats++
          if (atPos === -1) atPos = k - from
        }
      }
    }
  }
  if (digits === len) return true // /^\d+$/
  if (len === 36 && isUuid(path, from)) return true
  if (allHex && len >= 12) return true // /^[0-9a-f]{12,}$/i
  if (ats === 1 && atPos > 0 && atPos < len - 1) return true // /^[^@/]+@[^@/]+$/
  if (digits > 0 && allToken && len >= 16) return true // /^(?=.*\d)[A-Za-z0-9_-]{16,}$/
  return digits > 0 && alphas > 0 && allMixed && len >= 8 // /^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9._~-]{8,}$/
}

function isUuid(path: string, from: number): boolean {
  for (let k = 0; k < 36; k++) {
    const c = path.charCodeAt(from + k)
    if (k === 8 || k === 13 || k === 18 || k === 23) {
      if (c !== 45) return false
    } else if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false
  }
  return true
}

/** pathTemplate(path): identifier segments → `{id}`, the query cut, at most TRAFFIC_LIMITS.maxPathLength. */
export function templateOf(path: string): string {
  const q = path.indexOf('?')
  const end = q === -1 ? path.length : q
  let out: string | null = null
  let copied = 0
  let i = 0
  while (i <= end) {
    let j = i
    while (j < end && path.charCodeAt(j) !== SLASH) j++
    if (isIdSegment(path, i, j)) {
      out = `${out ?? ''}${path.slice(copied, i)}{id}`
      copied = j
    }
    i = j + 1
  }
  const t = out === null ? (end === path.length ? path : path.slice(0, end)) : out + path.slice(copied, end)
  const max = TRAFFIC_LIMITS.maxPathLength
  return t.length > max ? `${t.slice(0, max - 3)}...` : t
}
