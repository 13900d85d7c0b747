import { isIP } from 'node:net'
/** `host:port` or `[v6]:port` → host (without brackets) and port. The address was validated at config time. */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':')
  const host = address.slice(0, i)
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(address.slice(i + 1)) }
}

/** The port of a `host:port` address. */
export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

/**
 * One spelling per address, as the kernel reports it: `::ffff:10.0.0.1` → `10.0.0.1`; IPv6
 * compressed and lower-cased (`FD00:0DAE:0:0::100` → `fd00:dae::100`), so a configured address
 * matches the one SO_ORIGINAL_DST returns however it was written. Anything else is returned as is.
 */
export function canonicalIp(ip: string): string {
  const l = ip.toLowerCase()
  if (l.startsWith('::ffff:') && isIP(l.slice(7)) === 4) return l.slice(7)
  if (isIP(l) !== 6) return l
  const h = new URL(`http://[${l}]/`).hostname
  return h.slice(1, -1)
}

/** Listens on host:port; resolves the port bound. */
export function listenOn(server: import('node:net').Server, port: number, host: string, opts: { ipv6Only?: boolean } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port, host, exclusive: true, ...(opts.ipv6Only ? { ipv6Only: true } : {}) }, () => {
      server.removeListener('error', reject)
      resolve((server.address() as import('node:net').AddressInfo).port)
    })
  })
}

/**
 * The second address of a dual-stack pod for a listener bound to an IPv4 default: ip6tables
 * REDIRECTs an IPv6 connection to the IPv6 loopback (outbound) or the pod's IPv6 address
 * (inbound), which a socket on 127.0.0.1 or 0.0.0.0 never sees. null: no twin.
 */
export function ipv6Twin(host: string): string | null {
  return host === '127.0.0.1' ? '::1' : host === '0.0.0.0' ? '::' : null
}

/**
 * Binds `primary` to host:port and, for the IPv4 defaults (127.0.0.1, 0.0.0.0), a second server made
 * by `makeTwin` to the same port on the IPv6 twin (::1, ::), best effort (a host without IPv6, or
 * the port taken there: IPv4 only). Resolves the port and the twin, if any.
 */
export async function listenDualStack(primary: import('node:net').Server, makeTwin: () => import('node:net').Server, port: number, host: string): Promise<{ port: number; twin: import('node:net').Server | null }> {
  const bound = await listenOn(primary, port, host)
  const twinHost = ipv6Twin(host)
  if (twinHost === null) return { port: bound, twin: null }
  const twin = makeTwin()
  try {
    await listenOn(twin, bound, twinHost, { ipv6Only: true })
    return { port: bound, twin }
  } catch {
    return { port: bound, twin: null }
  }
}
