import net from 'node:net'
import tls from 'node:tls'
import { peerIdentityFromCert, type PeerIdentity } from '../identity/index.js'
import type { MtlsMode } from '../policy/index.js'
import type { OriginalDst } from '../pipeline/index.js'
import { SERVER_FIRST_PORTS } from '../snapshot/index.js'
import { setConnectionInfo } from '../engines/common/context.js'
import { listenDualStack } from '../engines/common/address.js'
import type { ConnectionSink } from '../engines/index.js'
import { detect, detectDirect, targetPortOf, type TcpMetrics } from '../l4/index.js'
import { MESH_ALPN, serverTlsOptions, type CredentialStore } from '../tls/index.js'

export type { ConnectionSink }

/** What the inbound TCP handler is given for an accepted non-HTTP connection. */
export interface InboundTcpConnection {
  readonly peer: PeerIdentity | null
  readonly security: 'mutual_tls' | 'none'
  readonly port: number
  readonly sni: string | null
  /** The address the caller reached the pod on (the original destination's, when redirected). */
  readonly localAddress: string
}

export interface InboundListenerOptions {
  readonly creds: CredentialStore
  /** The HTTP front (the engine's server, never listening itself) that connections are handed to. */
  readonly http: ConnectionSink
  /** The HTTP/2 front for peers that negotiated ALPN h2 and h2c callers; null: none. */
  readonly h2?: ConnectionSink | null
  /** Non-HTTP connections (remora-tcp from a peer, or plaintext that is not HTTP): L4 authz, then the app port. */
  readonly tcp?: (socket: net.Socket, c: InboundTcpConnection) => void
  /** The PeerAuthentication mode for a workload port, read per connection (it changes with policy). */
  readonly mtlsMode: (port: number) => MtlsMode
  readonly onRefused: (reason: string, remote: string) => void
  /** Set when there is nothing to forward to (no inbound.app): every connection is refused with this reason. */
  readonly refuseAll?: string
  /** The app port a connection is for when it does not say (no SNI port, not redirected). */
  readonly defaultPort?: () => number
  /** The sidecar's own ports: never forwarded to, whatever a peer asks for. */
  readonly ownPorts?: () => ReadonlySet<number>
  readonly originalDst?: (socket: net.Socket) => OriginalDst | null
  readonly metrics?: TcpMetrics
  /** How long a plaintext client may stay silent before it is treated as TCP (server-first). */
  readonly detectionTimeoutMs?: number
  /** A direct connection that sends nothing decisive this long is closed (the front's header timeout). */
  readonly directTimeoutMs?: number
}

const TLS_HANDSHAKE = 0x16
const DEFAULT_DETECTION_MS = 5_000
const DEFAULT_DIRECT_MS = 10_000

/**
 * The inbound listener (:15006). Every connection is classified on its first byte: a TLS
 * ClientHello goes to the TLS server (TLS 1.3 only, client cert required and chained to the trust
 * bundle, exactly one SPIFFE URI SAN in a trusted domain), then by ALPN to the HTTP/1.1 front, the
 * HTTP/2 front or the TCP handler, for the app port its SNI names; anything else is plaintext,
 * accepted only under PERMISSIVE or DISABLE, for the port it was redirected from. STRICT never
 * reads plaintext; DISABLE never does TLS. The sidecar's own ports are never a target.
 */
export class InboundListener {
  readonly #net: net.Server
  readonly #tls: tls.Server
  readonly #sockets = new Set<net.Socket>()
  /** Open mTLS connections by the peer's SPIFFE ID (closed when the peer is quarantined). */
  readonly #peers = new Map<tls.TLSSocket, string>()
  readonly #unsubscribe: () => void

  constructor(private readonly opts: InboundListenerOptions) {
    const { creds, onRefused } = opts
    // Without credentials yet (waiting for the control plane) the TLS server has no context:
    // #classify refuses every connection until the first certificate arrives.
    // requestCert/rejectUnauthorized/ALPN are server options (setSecureContext ignores them), so
    // they are set here even when the certificate itself comes later.
    const { cert: _c, key: _k, ca: _ca, ...serverOnly } = serverTlsOptions({ certPem: '', keyPem: '', caPem: '' } as Parameters<typeof serverTlsOptions>[0])
    this.#tls = tls.createServer({ ...serverOnly, ...(creds.hasCredentials ? serverTlsOptions(creds.current) : {}), handshakeTimeout: 10_000 })
    this.#unsubscribe = creds.onChange((c) => this.#tls.setSecureContext(serverTlsOptions(c)))
    this.#tls.on('secureConnection', (sock: tls.TLSSocket) => this.#secure(sock))
    this.#tls.on('tlsClientError', (err: NodeJS.ErrnoException, sock: tls.TLSSocket) => {
      onRefused(`TLS handshake failed: ${err.code ?? err.message}`, `${sock.remoteAddress}:${sock.remotePort}`)
    })
    this.#net = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.#accept(socket))
  }

  #remote(s: net.Socket): string {
    return `${s.remoteAddress}:${s.remotePort}`
  }

  #secure(sock: tls.TLSSocket): void {
    // getPeerX509Certificate: only the SAN string and the DER are computed. getPeerCertificate()
    // builds the whole legacy object (three fingerprints, the public key…): 21 → 12 µs a call here.
    const x509 = sock.getPeerX509Certificate()
    const r = peerIdentityFromCert(x509 ? { subjectaltname: x509.subjectAltName, raw: x509.raw } : null, this.opts.creds.current.trustDomains)
    if (!r.ok) {
      this.opts.onRefused(r.reason, this.#remote(sock))
      sock.destroy()
      return
    }
    this.#peers.set(sock, r.identity.uri)
    sock.once('close', () => this.#peers.delete(sock))
    const asked = targetPortOf(sock.servername)
    const port = asked ?? this.opts.defaultPort?.() ?? 0
    if (asked !== null && this.opts.ownPorts?.().has(asked)) {
      this.opts.onRefused(`port ${asked} is the sidecar's own: never a target`, this.#remote(sock))
      sock.destroy()
      return
    }
    const alpn = sock.alpnProtocol
    if (alpn === MESH_ALPN.tcp) {
      if (!this.opts.tcp) return void sock.destroy()
      sock.allowHalfOpen = true
      this.opts.tcp(sock, { peer: r.identity, security: 'mutual_tls', port, sni: typeof sock.servername === 'string' ? sock.servername : null, localAddress: sock.localAddress ?? '127.0.0.1' })
      return
    }
    setConnectionInfo(sock, { peer: r.identity, security: 'mutual_tls', originalDst: asked === null ? null : { address: sock.localAddress ?? '', port: asked, family: 4 } })
    if (alpn === MESH_ALPN.h2) {
      if (!this.opts.h2) return void sock.destroy()
      this.opts.h2.emit('connection', sock)
    } else this.opts.http.emit('connection', sock)
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    let od: OriginalDst | null = null
    try {
      od = this.opts.originalDst?.(socket) ?? null
    } catch {
      od = null
    }
    if (this.opts.refuseAll !== undefined) {
      this.opts.onRefused(this.opts.refuseAll, this.#remote(socket))
      socket.destroy()
      return
    }
    if (od !== null && this.opts.ownPorts?.().has(od.port)) {
      this.opts.onRefused(`port ${od.port} is the sidecar's own: never a target`, this.#remote(socket))
      socket.destroy()
      return
    }
    // A redirected plaintext client of a server-first protocol waits for the server: never wait for it.
    if (od !== null && SERVER_FIRST_PORTS.has(od.port)) return this.#plaintext(socket, od, 'tcp')
    this.#classify(socket, od)
  }

  #classify(socket: net.Socket, od: OriginalDst | null): void {
    let buf: Buffer = Buffer.alloc(0)
    // Only a redirected client (a plaintext caller of an app port) can be opaque TCP. A direct
    // connection to the listener is a peer: TLS, or plaintext HTTP (the front answers anything
    // else with 400 and times out a silent one, as before).
    const timer = setTimeout(() => {
      cleanup()
      // A peer that sends nothing decisive within the header timeout: closed silently, as the front would.
      if (od === null) return void socket.destroy()
      if (buf.length > 0) socket.unshift(buf)
      this.#plaintext(socket, od, 'timeout')
    }, od === null ? (this.opts.directTimeoutMs ?? DEFAULT_DIRECT_MS) : (this.opts.detectionTimeoutMs ?? DEFAULT_DETECTION_MS))
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
      if (buf.length === 0) return
      let kind: 'tls' | 'http1' | 'h2' | 'tcp'
      if (buf[0] === TLS_HANDSHAKE) kind = 'tls'
      else {
        const d = od === null ? detectDirect(buf) : detect(buf)
        if (d === 'more') return
        kind = d === 'tls' ? 'tcp' : d
      }
      cleanup()
      socket.unshift(buf)
      if (kind === 'tls') return this.#tlsIn(socket, od)
      this.#plaintext(socket, od, kind)
    }
    socket.on('readable', onReadable)
    socket.once('close', cleanup)
    socket.once('end', onEnd)
  }

  #tlsIn(socket: net.Socket, od: OriginalDst | null): void {
    if (!this.opts.creds.hasCredentials) {
      this.opts.onRefused('no workload certificate yet (waiting for the control plane)', this.#remote(socket))
      socket.destroy()
      return
    }
    const port = od?.port ?? this.opts.defaultPort?.() ?? 0
    if (this.opts.mtlsMode(port) === 'DISABLE') {
      this.opts.onRefused('TLS refused: PeerAuthentication DISABLE', this.#remote(socket))
      socket.destroy()
      return
    }
    socket.allowHalfOpen = false
    this.#tls.emit('connection', socket)
  }

  #plaintext(socket: net.Socket, od: OriginalDst | null, kind: 'http1' | 'h2' | 'tcp' | 'timeout'): void {
    if (!this.opts.creds.hasCredentials) {
      this.opts.onRefused('no workload certificate yet (waiting for the control plane)', this.#remote(socket))
      socket.destroy()
      return
    }
    const port = od?.port ?? this.opts.defaultPort?.() ?? 0
    if (this.opts.mtlsMode(port) === 'STRICT') {
      this.opts.onRefused('plaintext refused: PeerAuthentication STRICT', this.#remote(socket))
      socket.destroy()
      return
    }
    this.opts.metrics?.detected('inbound', kind)
    if (kind === 'tcp' || kind === 'timeout') {
      if (!this.opts.tcp) return void socket.destroy()
      this.opts.tcp(socket, { peer: null, security: 'none', port, sni: null, localAddress: od?.address ?? socket.localAddress ?? '127.0.0.1' })
      return
    }
    // allowHalfOpen stays on (as the fronts' own servers set it): a caller's FIN does not drop the answer in flight.
    setConnectionInfo(socket, { peer: null, security: 'none', originalDst: od })
    if (kind === 'h2') {
      if (!this.opts.h2) return void socket.destroy()
      this.opts.h2.emit('connection', socket)
    } else this.opts.http.emit('connection', socket)
  }

  /** Closes every open mTLS connection whose peer `pred` names (quarantine); returns how many. */
  closePeers(pred: (uri: string) => boolean): number {
    let n = 0
    for (const [sock, uri] of this.#peers) {
      if (!pred(uri)) continue
      sock.destroy()
      n++
    }
    return n
  }

  /** Closes every connection (this workload was quarantined); returns how many. */
  closeAll(): number {
    const n = this.#sockets.size
    for (const s of this.#sockets) s.destroy()
    return n
  }

  /** Binds host:port, and its IPv6 twin for the IPv4 defaults (a dual-stack pod's redirected IPv6 connections). */
  async listen(port: number, host: string): Promise<number> {
    const r = await listenDualStack(this.#net, () => net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.#accept(socket)), port, host)
    this.#net6 = r.twin
    return r.port
  }

  get listening(): boolean {
    return this.#net.listening
  }

  #net6: net.Server | null = null

  async close(): Promise<void> {
    this.#net6?.close()
    this.#unsubscribe()
    const closed = new Promise<void>((r) => this.#net.close(() => r()))
    this.opts.http.closeIdleConnections()
    this.opts.h2?.closeIdleConnections()
    for (const s of this.#sockets) s.destroy()
    await closed
  }
}
