import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { canonicalIp } from '../engines/common/index.js'

// Under REGISTRY_ONLY an allowed external host is named by the app (TLS SNI, HTTP Host): both are
// the app's to choose, so a name alone would let it reach any address by sending an allowed one.
// The original destination must be one of the name's own addresses (as the resolver gives them),
// checked per connection, the answers cached briefly and bounded.

const TTL_MS = 30_000
const MAX_ENTRIES = 1024

export class HostAddresses {
  readonly #cache = new Map<string, { at: number; addrs: Promise<ReadonlySet<string>> }>()

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether `ip` is one of `host`'s addresses (false when the name does not resolve). */
  async has(host: string, ip: string): Promise<boolean> {
    if (isIP(host) !== 0) return canonicalIp(host) === canonicalIp(ip)
    const t = this.now()
    let e = this.#cache.get(host)
    if (e === undefined || t - e.at > TTL_MS) {
      if (this.#cache.size >= MAX_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!)
      e = {
        at: t,
        addrs: lookup(host, { all: true, verbatim: true }).then(
          (r) => new Set(r.map((a) => canonicalIp(a.address))),
          () => new Set<string>(),
        ),
      }
      this.#cache.set(host, e)
    }
    return (await e.addrs).has(canonicalIp(ip))
  }
}
