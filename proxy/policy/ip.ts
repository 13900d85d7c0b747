// IPv4/IPv6 addresses and CIDR ranges, parsed once at compile time into integers so that a
// match is a shift and a compare. Syntax follows Go's net/netip (what Istio validates with):
// no leading zeros in IPv4 octets, no zone in a policy, host bits allowed and masked off.

export type IpAddr = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly n: bigint }

export interface Cidr {
  readonly v: 4 | 6
  readonly bits: number
  /** network address, host bits cleared */
  readonly net: number | bigint
}

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/

export function parseIpv4(s: string): number | null {
  const parts = s.split('.')
  if (parts.length !== 4) return null
  let n = 0
  for (const p of parts) {
    if (!V4_OCTET.test(p)) return null
    const o = Number(p)
    if (o > 255) return null
    n = n * 256 + o
  }
  return n
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/

export function parseIpv6(s: string): bigint | null {
  if (s.length < 2 || s.length > 45) return null
  const dbl = s.indexOf('::')
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return null
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return []
    const out: number[] = []
    const items = part.split(':')
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseIpv4(it)
        if (v4 === null) return null
        out.push(Math.floor(v4 / 65536), v4 % 65536)
      } else {
        if (!HEXTET.test(it)) return null
        out.push(parseInt(it, 16))
      }
    }
    return out
  }
  let groups: number[]
  if (dbl === -1) {
    const g = parseGroups(s)
    if (!g || g.length !== 8) return null
    groups = g
  } else {
    const head = parseGroups(s.slice(0, dbl))
    const tail = parseGroups(s.slice(dbl + 2))
    if (!head || !tail) return null
    // an embedded IPv4 may only end the address
    if (head.length + tail.length > 7) return null
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  }
  let n = 0n
  for (const g of groups) n = (n << 16n) | BigInt(g)
  return n
}

const V4_MAPPED_PREFIX = 0xffffn << 32n

/**
 * Parse a request-side address. Lenient where Node is: a zone (`fe80::1%eth0`) is dropped and an
 * IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack Node socket reports) becomes IPv4.
 */
export function parseRequestIp(s: string): IpAddr | null {
  if (s.includes(':')) {
    const pct = s.indexOf('%')
    const n = parseIpv6(pct === -1 ? s : s.slice(0, pct))
    if (n === null) return null
    if (n >> 32n === 0xffffn) return { v: 4, n: Number(n & 0xffffffffn) }
    return { v: 6, n }
  }
  const n = parseIpv4(s)
  return n === null ? null : { v: 4, n }
}

/** Parse a policy value: an address (as a /32 or /128) or a CIDR. Returns null when invalid. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/')
  const addr = slash === -1 ? s : s.slice(0, slash)
  const lenStr = slash === -1 ? null : s.slice(slash + 1)
  if (addr.includes('%')) return null
  let v: 4 | 6
  let n: number | bigint
  if (addr.includes(':')) {
    const p = parseIpv6(addr)
    if (p === null) return null
    v = 6
    n = p
  } else {
    const p = parseIpv4(addr)
    if (p === null) return null
    v = 4
    n = p
  }
  const max = v === 4 ? 32 : 128
  let bits = max
  if (lenStr !== null) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenStr)) return null
    bits = Number(lenStr)
    if (bits > max) return null
  }
  // An IPv4-mapped IPv6 range (::ffff:0:0/96 and longer) is matched against IPv4 requests, because
  // request addresses in that form are turned into IPv4 by parseRequestIp().
  if (v === 6 && bits >= 96 && ((n as bigint) >> 32n) << 32n === V4_MAPPED_PREFIX) {
    return { v: 4, bits: bits - 96, net: maskV4(Number((n as bigint) & 0xffffffffn), bits - 96) }
  }
  return v === 4 ? { v, bits, net: maskV4(n as number, bits) } : { v, bits, net: maskV6(n as bigint, bits) }
}

function maskV4(n: number, bits: number): number {
  if (bits === 0) return 0
  return Math.floor(n / 2 ** (32 - bits)) * 2 ** (32 - bits)
}

function maskV6(n: bigint, bits: number): bigint {
  if (bits === 0) return 0n
  const shift = BigInt(128 - bits)
  return (n >> shift) << shift
}

export function cidrContains(c: Cidr, ip: IpAddr): boolean {
  if (c.v !== ip.v) return false
  if (c.v === 4) return maskV4(ip.n as number, c.bits) === c.net
  return maskV6(ip.n as bigint, c.bits) === c.net
}
