// The fuzzer's reference checks on what reached the app. Written apart from the sidecar's own
// code (no import of proxy/**): a request the app receives must be one the sidecar had no reason
// to refuse, and one that no DENY rule of the fuzz policy covers. Each violation has an invariant
// and a short signature; (invariant, signature) is what makes a finding unique.

export interface AppRequest {
  readonly method: string
  readonly url: string
  readonly httpVersion: string
  /** As node:http gives them: name, value, name, value… */
  readonly rawHeaders: readonly string[]
}

export interface Violation {
  readonly invariant: string
  readonly signature: string
  readonly detail: string
}

/** The fuzz policy: DENY paths ["/admin", "/admin/*"], DENY when request.headers[x-user] in [mallory]. */
export const DENIED_PATH = '/admin'
export const DENIED_USER = 'mallory'
/** The SPIFFE ID of the caller (the fuzzer's client certificate, or the outbound sidecar). */
export const CALLER_ID = 'spiffe://cluster.local/ns/shop/sa/orders'

const isCtl = (c: number): boolean => c < 0x20 || c === 0x7f
const hexVal = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1)
const isUnreserved = (b: number): boolean => (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b === 45 || b === 46 || b === 95 || b === 126

function ctlClass(b: number): string {
  return b === 0 ? 'NUL' : b === 0x0a || b === 0x0d ? 'CR/LF' : b === 0x7f ? 'DEL' : b === 0x09 ? 'TAB' : 'C0'
}

/** What an app (or a file server behind it) makes of a path: every escape decoded, `\` as `/`, dot-segments and slash runs resolved, cut at a control character. */
export function appViewOfPath(path: string): string {
  let s = ''
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c === 37 && i + 2 < path.length && hexVal(path.charCodeAt(i + 1)) >= 0 && hexVal(path.charCodeAt(i + 2)) >= 0) {
      s += String.fromCharCode(hexVal(path.charCodeAt(i + 1)) * 16 + hexVal(path.charCodeAt(i + 2)))
      i += 2
    } else s += c === 92 ? '/' : path[i]!
  }
  s = s.replace(/\\/g, '/')
  const cut = [...s].findIndex((ch) => isCtl(ch.charCodeAt(0)))
  if (cut !== -1) s = s.slice(0, cut)
  const out: string[] = []
  for (const seg of s.split('/').slice(1)) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  return '/' + out.join('/')
}

function pathViolations(method: string, url: string, out: Violation[]): void {
  if (url === '*' && method === 'OPTIONS') return // asterisk-form (RFC 9112 §3.2.4)
  if (url.charCodeAt(0) !== 47) {
    out.push({ invariant: 'app-bad-path', signature: 'not origin-form', detail: url })
    return
  }
  if (url.includes('#')) out.push({ invariant: 'app-bad-path', signature: 'fragment', detail: url })
  const q = url.search(/[?#]/)
  const path = q === -1 ? url : url.slice(0, q)
  const bad = new Set<string>()
  const ctl = new Set<string>()
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (isCtl(c)) ctl.add(`raw ${ctlClass(c)}`)
    else if (c === 0x20) bad.add('raw space')
    else if (c >= 0x80) bad.add('raw non-ASCII')
    else if (c === 92) bad.add('backslash')
    else if (c === 37) {
      const h = hexVal(path.charCodeAt(i + 1))
      const l = hexVal(path.charCodeAt(i + 2))
      if (h < 0 || l < 0) {
        bad.add('invalid escape')
        continue
      }
      const b = h * 16 + l
      if (isCtl(b)) ctl.add(`%${ctlClass(b)}`)
      else if (b === 0x2f || b === 0x5c) bad.add('escaped slash or backslash')
      else if (isUnreserved(b)) bad.add('escaped unreserved character')
      else if (path.slice(i + 1, i + 3) !== path.slice(i + 1, i + 3).toUpperCase()) bad.add('lower-case escape')
      i += 2
    }
  }
  if (path.includes('//')) bad.add('slash run')
  if (path.split('/').some((s) => s === '.' || s === '..')) bad.add('dot-segment')
  for (const s of bad) out.push({ invariant: 'app-bad-path', signature: s, detail: url })
  for (const s of ctl) out.push({ invariant: 'app-control-char', signature: s, detail: url })

  const seen = appViewOfPath(path)
  if (seen === DENIED_PATH || seen.startsWith(`${DENIED_PATH}/`)) {
    // the signature says which trick got through: the features of the path as sent to the app
    const f: string[] = []
    if (/%[0-7][0-9A-Fa-f]/.test(path) && [...path.matchAll(/%([0-9A-Fa-f]{2})/g)].some((m) => isCtl(parseInt(m[1]!, 16)))) f.push('escaped control')
    if ([...path].some((ch) => isCtl(ch.charCodeAt(0)))) f.push('raw control')
    if (/%(?!2[fF]|5[cC])[0-9A-Fa-f]{2}/.test(path) && !f.includes('escaped control')) f.push('escape')
    if (/%2[fF]|%5[cC]|\\/.test(path)) f.push('slash escape')
    if (path.includes('//')) f.push('slash run')
    if (path.split('/').some((s) => s === '.' || s === '..')) f.push('dot-segment')
    out.push({ invariant: 'deny-path', signature: f.length ? f.join('+') : 'plain', detail: url })
  }
}

/** Every violation in one request the app received. */
export function checkAppRequest(r: AppRequest): Violation[] {
  const out: Violation[] = []
  pathViolations(r.method, r.url, out)
  const lines = new Map<string, string[]>()
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    const k = r.rawHeaders[i]!.toLowerCase()
    const v = r.rawHeaders[i + 1]!
    lines.set(k, [...(lines.get(k) ?? []), v])
    if (k.startsWith('x-remora-') || k.startsWith('x-envoy-')) out.push({ invariant: 'app-internal-header', signature: k.startsWith('x-remora-') ? 'x-remora-*' : 'x-envoy-*', detail: `${k}: ${v}` })
    if (/[\0\r\n]/.test(k + v)) out.push({ invariant: 'app-header-bytes', signature: 'CR/LF/NUL', detail: JSON.stringify(`${k}: ${v}`) })
  }
  const count = (k: string): number => lines.get(k)?.length ?? 0
  if (count('host') !== 1) out.push({ invariant: 'app-duplicate-header', signature: `host ×${Math.min(count('host'), 2)}`, detail: JSON.stringify(lines.get('host') ?? []) })
  if (count('content-length') > 1) out.push({ invariant: 'app-duplicate-header', signature: 'content-length', detail: JSON.stringify(lines.get('content-length')) })
  if (count('transfer-encoding') > 0) {
    if (count('content-length') > 0) out.push({ invariant: 'app-duplicate-header', signature: 'content-length + transfer-encoding', detail: '' })
    const te = (lines.get('transfer-encoding') ?? []).join(',').toLowerCase()
    if (te !== 'chunked') out.push({ invariant: 'app-duplicate-header', signature: 'transfer-encoding other than chunked', detail: te })
  }
  const xfcc = lines.get('x-forwarded-client-cert') ?? []
  if (xfcc.length !== 1 || !xfcc[0]!.startsWith('By=spiffe://') || !xfcc[0]!.includes(`URI=${CALLER_ID}`) || xfcc[0]!.includes('sa/admin'))
    out.push({ invariant: 'app-forged-xfcc', signature: `xfcc ×${xfcc.length}`, detail: JSON.stringify(xfcc) })
  const ws = (lines.get('upgrade') ?? []).join(',').toLowerCase() === 'websocket'
  for (const h of ['keep-alive', 'proxy-connection', 'te', 'trailer', 'expect', 'proxy-authorization', ...(ws ? [] : ['upgrade'])]) {
    if (count(h) > 0) out.push({ invariant: 'app-hop-by-hop', signature: h, detail: JSON.stringify(lines.get(h)) })
  }
  // Istio joins a repeated header's values with commas and matches each element: any copy, any element.
  const users = lines.get('x-user') ?? []
  const elements = users.join(',').split(',').map((s) => s.trim())
  if (elements.includes(DENIED_USER)) out.push({ invariant: 'deny-header', signature: users.length > 1 ? 'repeated header lines' : users[0]!.includes(',') ? 'comma list' : 'single value', detail: JSON.stringify(users) })
  return out
}
