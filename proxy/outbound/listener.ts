import net from 'node:net'
import type { OriginalDst } from '../pipeline/index.js'
import { SERVER_FIRST_PORTS } from '../snapshot/index.js'
import { listenDualStack, setConnectionInfo } from '../engines/common/index.js'
import { detect, detectDirect, matchDestination, matchHost, matchName, parseClientHello, type L4Match, type L4Table, type OutboundConnections, type TcpMetrics } from '../l4/index.js'
import type { Logger } from '../deps.js'
import type { ConnectionSink } from '../engines/index.js'

// The outbound listener (:15001). Every connection the app makes lands here (iptables REDIRECT) or
// is made to it directly. Its original destination (SO_ORIGINAL_DST) picks the cluster; its
// protocol is declared by the cluster's port, or known (server-first ports: TCP at once), or
// detected from the first bytes: HTTP/1.x goes to the HTTP front (routed by Host, as before), the
// h2 preface to the HTTP/2 front, a TLS ClientHello is routed by SNI untouched, anything else is
// opaque TCP. A client that sends nothing within the detection timeout is TCP too.

/** A local bind port's destination: a cluster, on a service port or directly on a workload port. */
export interface FixedDestination {
  readonly cluster: string
  readonly port: number | null
  readonly targetPort: number | null
}

export interface OutboundListenerOptions {
  readonly http: ConnectionSink
  /** The HTTP/2 front (h2c prior knowledge), or null when this sidecar has none. */
  readonly h2: ConnectionSink | null
  /** Reads a redirected connection's original destination; null when it was not redirected. */
  readonly originalDst: (socket: net.Socket) => OriginalDst | null
  /** The current routing table; null before the first config (TCP is refused then). */
  readonly table: () => L4Table | null
  readonly connections: OutboundConnections
  readonly metrics: TcpMetrics
  readonly detectionTimeoutMs: number
  /** A connection made to the listener itself that sends nothing decisive this long is closed (the front's header timeout). */
  readonly directTimeoutMs: number
  readonly logger: Logger
  /** Every connection is for this cluster and service port (a local bind port, without interception). */
  readonly fixed?: FixedDestination
}

/** Fallbacks are logged once per destination; the set is bounded so a scan cannot grow it. */
const MAX_LOGGED = 1024

export class OutboundListener {
  readonly #net: net.Server
  readonly #sockets = new Set<net.Socket>()
  readonly #logged = new Set<string>()

  constructor(private readonly opts: OutboundListenerOptions) {
    this.#net = net.createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (s) => this.#accept(s))
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    const fixed = this.opts.fixed
    if (fixed !== undefined) return this.#acceptFixed(socket, fixed)
    let od: OriginalDst | null = null
    {
      try {
        od = this.opts.originalDst(socket)
      } catch (err) {
        this.#logOnce('original_dst', { event: 'original_dst_failed', error: (err as Error).message }, 'cannot read the original destination: connections are routed by Host and SNI only')
      }
    }
    if (od !== null) setConnectionInfo(socket, { peer: null, security: 'none', originalDst: od })
    const table = this.opts.table()
    const m = od !== null && table !== null ? matchDestination(table, od) : null
    if (m?.protocol === 'tcp') return this.#tcp(socket, od, m, 'declared')
    if (m === null || m.protocol === null) {
      if (od !== null && SERVER_FIRST_PORTS.has(od.port)) return this.#tcp(socket, od, m, 'server_first')
    }
    this.#sniff(socket, od, m)
  }

  #acceptFixed(socket: net.Socket, fixed: FixedDestination): void {
    const table = this.opts.table()
    const named = table === null ? null : matchName(table, fixed.cluster, fixed.port)
    const m = named !== null && fixed.targetPort !== null ? { ...named, targetPort: fixed.targetPort } : named
    if (m === null) {
      this.#logOnce(`fixed|${fixed.cluster}`, { event: 'outbound_listener_unrouted', cluster: fixed.cluster }, table === null ? 'no config yet: connection refused' : 'the cluster of this listener is not in the config: connection refused')
      return void socket.destroy()
    }
    // HTTP on this port goes to the listener's cluster and port, whatever its Host says.
    setConnectionInfo(socket, { peer: null, security: 'none', fixedRoute: { cluster: m.cluster.name, targetPort: m.targetPort } })
    if (m.protocol === 'tcp') return this.#tcp(socket, null, m, 'declared')
    if (m.protocol === null && fixed.port !== null && SERVER_FIRST_PORTS.has(fixed.port)) return this.#tcp(socket, null, m, 'server_first')
    this.#sniff(socket, null, m, false)
  }

  #sniff(socket: net.Socket, od: OriginalDst | null, m: L4Match | null, direct = od === null): void {
    let buf: Buffer = Buffer.alloc(0)
    // Without an original destination (the app dialled the listener itself) there is nowhere to
    // send opaque bytes: the connection is HTTP (its front answers anything else with 400), or
    // TLS routed by SNI, and a silent client meets the front's header timeout, as before.
    const timer = setTimeout(() => {
      cleanup()
      // Nothing decided within the front's header timeout: closed silently, as the front would.
      if (direct) return void socket.destroy()
      this.#fallback(od, 'timeout')
      this.#tcp(socket, od, m, 'timeout', buf)
    }, direct ? this.opts.directTimeoutMs : this.opts.detectionTimeoutMs)
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.removeListener('readable', onReadable)
      socket.removeListener('close', cleanup)
      socket.removeListener('end', onEnd)
    }
    // The client's FIN before its first bytes told what it speaks (a truncated head, a lone 'P'):
    // nothing can be forwarded (no protocol, and a stream cannot be given its bytes back after its
    // end), so the connection is closed at once, never held until a timeout.
    const onEnd = (): void => {
      cleanup()
      socket.destroy()
    }
    const onReadable = (): void => {
      let c: Buffer | null
      while ((c = socket.read() as Buffer | null) !== null) buf = buf.length === 0 ? c : Buffer.concat([buf, c])
      const d = direct ? detectDirect(buf) : detect(buf)
      if (d === 'more') return
      if (d === 'tls') {
        const ch = parseClientHello(buf)
        if (ch === 'more') return
        cleanup()
        socket.unshift(buf)
        return this.#tls(socket, od, m, ch?.sni ?? null)
      }
      cleanup()
      socket.unshift(buf)
      if (d === 'http1') {
        this.opts.metrics.detected('outbound', 'http1')
        // allowHalfOpen stays on, as the fronts' own servers set it: a client that shuts down its
        // sending side still gets the answers in flight.
        this.opts.http.emit('connection', socket)
      } else if (d === 'h2') {
        this.opts.metrics.detected('outbound', 'h2')
        if (this.opts.h2 === null) return void socket.destroy()
        this.opts.h2.emit('connection', socket)
      } else {
        this.#fallback(od, 'tcp')
        this.#tcp(socket, od, m, 'tcp')
      }
    }
    socket.on('readable', onReadable)
    socket.once('close', cleanup)
    socket.once('end', onEnd)
  }

  #tls(socket: net.Socket, od: OriginalDst | null, m: L4Match | null, sni: string | null): void {
    this.opts.metrics.detected('outbound', 'tls')
    const table = this.opts.table()
    if (table === null) return void socket.destroy()
    const bySni = m ?? (sni !== null ? matchHost(table, sni, od?.port ?? null) : null)
    if (this.#quarantined(socket, table, bySni, 'TLS', sni)) return
    if (bySni !== null) void this.opts.connections.mesh(socket, bySni, 'TLS', sni)
    else void this.opts.connections.external(socket, table, od, 'TLS', sni)
  }

  #tcp(socket: net.Socket, od: OriginalDst | null, m: L4Match | null, result: string, pending?: Buffer): void {
    if (result !== 'tcp' && result !== 'timeout') this.opts.metrics.detected('outbound', result)
    if (pending !== undefined && pending.length > 0) socket.unshift(pending)
    const table = this.opts.table()
    if (table === null) return void socket.destroy()
    if (this.#quarantined(socket, table, m, 'TCP', null)) return
    if (m !== null) void this.opts.connections.mesh(socket, m, 'TCP', null)
    else void this.opts.connections.external(socket, table, od, 'TCP', null)
  }

  /** Quarantine before any dial (the HTTP fronts check it per request, in the chain). */
  #quarantined(socket: net.Socket, table: L4Table, m: L4Match | null, protocol: 'TCP' | 'TLS', sni: string | null): boolean {
    const q = table.quarantine
    if (!q.self && q.identities.size === 0) return false
    let reason: string | null = null
    if (q.self) reason = `quarantined: this workload (${q.selfReason})`
    else if (m !== null && m.cluster.identities.length > 0 && m.cluster.identities.every((i) => q.identities.has(i))) reason = `quarantined: ${m.cluster.identities.join(', ')} (${q.identities.get(m.cluster.identities[0]!)})`
    if (reason === null) return false
    this.opts.connections.quarantined(socket, protocol, sni, m?.cluster.name ?? null, reason)
    return true
  }

  #fallback(od: OriginalDst | null, result: 'timeout' | 'tcp'): void {
    this.opts.metrics.detected('outbound', result)
    const dest = od ? `${od.address}:${od.port}` : 'direct'
    this.#logOnce(`${result}|${dest}`, { event: 'protocol_detection_fallback', result, destination: dest }, result === 'timeout' ? 'the client sent nothing within the detection timeout: treated as TCP' : 'first bytes are not HTTP or TLS: treated as TCP')
  }

  #logOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.#logged.has(key) || this.#logged.size >= MAX_LOGGED) return
    this.#logged.add(key)
    this.opts.logger.info(fields, msg)
  }

  /** Closes every connection the app has open to this listener (this workload was quarantined). */
  closeAll(): number {
    const n = this.#sockets.size
    for (const s of this.#sockets) s.destroy()
    return n
  }

  /** Binds host:port, and its IPv6 twin for the IPv4 defaults (a dual-stack pod's redirected IPv6 connections). */
  async listen(port: number, host: string): Promise<number> {
    const r = await listenDualStack(this.#net, () => net.createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (s) => this.#accept(s)), port, host)
    this.#net6 = r.twin
    return r.port
  }

  get port(): number {
    const a = this.#net.address()
    return a !== null && typeof a === 'object' ? a.port : 0
  }

  get listening(): boolean {
    return this.#net.listening
  }

  #net6: net.Server | null = null

  async close(): Promise<void> {
    this.#net6?.close()
    const closed = new Promise<void>((r) => this.#net.close(() => r()))
    this.opts.http.closeIdleConnections()
    this.opts.h2?.closeIdleConnections()
    for (const s of this.#sockets) s.destroy()
    await closed
  }
}
