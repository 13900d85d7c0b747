import type { CompiledJwtRule, JwtLocation } from '../policy/index.js'

/** One configured place a token may be, with the rules that read it (in rule order). */
export interface LocationEntry {
  readonly location: JwtLocation
  /** `header:authorization:Bearer `, `param:token`, `cookie:session`. */
  readonly key: string
  readonly rules: readonly number[]
}

export interface TokenInput {
  /** Node's `req.rawHeaders`: the only view that keeps a repeated Authorization. */
  readonly rawHeaders: readonly string[]
  /** The query with its `?`, or ''. */
  readonly query: string
}

export interface FoundToken {
  readonly token: string
  readonly at: LocationEntry
}

export type Extraction = { readonly kind: 'tokens'; readonly found: readonly FoundToken[] } | { readonly kind: 'duplicate'; readonly where: string }

export function locationKey(l: JwtLocation): string {
  return l.kind === 'header' ? `header:${l.name}:${l.prefix}` : `${l.kind}:${l.name}`
}

export function locationLabel(l: JwtLocation): string {
  return l.kind === 'header' ? `header ${l.name}` : l.kind === 'param' ? `query parameter ${l.name}` : `cookie ${l.name}`
}

export function indexLocations(rules: readonly CompiledJwtRule[]): LocationEntry[] {
  const by = new Map<string, { location: JwtLocation; key: string; rules: number[] }>()
  rules.forEach((r, i) => {
    for (const l of r.locations) {
      const key = locationKey(l)
      let e = by.get(key)
      if (!e) by.set(key, (e = { location: l, key, rules: [] }))
      if (!e.rules.includes(i)) e.rules.push(i)
    }
  })
  return [...by.values()]
}

const NONE: Extraction = { kind: 'tokens', found: [] }

function startsWithCI(s: string, prefix: string): boolean {
  return s.length >= prefix.length && s.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()
}

function decodeComponent(s: string): string | null {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return null
  }
}

/**
 * Finds the tokens in the configured locations only: a token anywhere else is not looked at. A
 * location that occurs twice (two Authorization headers, a repeated parameter or cookie) is
 * refused: which copy a proxy and an app would each read is exactly what an attacker plays with.
 */
export function extractTokens(locations: readonly LocationEntry[], headerNames: ReadonlySet<string>, input: TokenInput): Extraction {
  let headers: Map<string, string[]> | null = null
  const raw = input.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase()
    if (!headerNames.has(k)) continue
    headers ??= new Map()
    const l = headers.get(k)
    if (l) l.push(raw[i + 1]!)
    else headers.set(k, [raw[i + 1]!])
  }
  let found: FoundToken[] | null = null
  let params: Map<string, string[]> | null | undefined
  let cookies: Map<string, string[]> | null | undefined
  for (const at of locations) {
    const l = at.location
    let values: string[] | undefined
    if (l.kind === 'header') values = headers?.get(l.name)
    else if (l.kind === 'param') {
      if (params === undefined) params = parseQuery(input.query)
      values = params?.get(l.name)
    } else {
      if (cookies === undefined) cookies = parseCookies(headers?.get('cookie'))
      values = cookies?.get(l.name)
    }
    if (values === undefined) continue
    if (values.length > 1) return { kind: 'duplicate', where: locationLabel(l) }
    let v = values[0]!
    if (l.kind === 'header' && l.prefix !== '') {
      if (!startsWithCI(v, l.prefix)) continue // another scheme (Basic …): not a token location
      v = v.slice(l.prefix.length)
    }
    v = v.trim()
    ;(found ??= []).push({ token: v, at })
  }
  return found ? { kind: 'tokens', found } : NONE
}

function parseQuery(query: string): Map<string, string[]> | null {
  if (query.length <= 1) return null
  const m = new Map<string, string[]>()
  for (const part of query.slice(1).split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = decodeComponent(eq < 0 ? part : part.slice(0, eq))
    const value = decodeComponent(eq < 0 ? '' : part.slice(eq + 1))
    if (name === null || value === null) continue
    const l = m.get(name)
    if (l) l.push(value)
    else m.set(name, [value])
  }
  return m
}

function parseCookies(headers: readonly string[] | undefined): Map<string, string[]> | null {
  if (!headers) return null
  const m = new Map<string, string[]>()
  for (const h of headers) {
    for (const pair of h.split(';')) {
      const eq = pair.indexOf('=')
      if (eq < 0) continue
      const name = pair.slice(0, eq).trim()
      let value = pair.slice(eq + 1).trim()
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
      const l = m.get(name)
      if (l) l.push(value)
      else m.set(name, [value])
    }
  }
  return m
}

/** The query without parameter `name` (other parameters byte for byte as received). */
export function removeParam(query: string, name: string): string {
  if (query.length <= 1) return query
  const kept = query
    .slice(1)
    .split('&')
    .filter((part) => {
      const eq = part.indexOf('=')
      return decodeComponent(eq < 0 ? part : part.slice(0, eq)) !== name
    })
  return kept.length ? `?${kept.join('&')}` : ''
}

/** A Cookie header value without cookie `name`, or null when nothing is left. */
export function removeCookie(header: string, name: string): string | null {
  const kept = header.split(';').filter((pair) => {
    const eq = pair.indexOf('=')
    return eq < 0 || pair.slice(0, eq).trim() !== name
  })
  const v = kept.map((p) => p.trim()).filter((p) => p !== '').join('; ')
  return v === '' ? null : v
}
