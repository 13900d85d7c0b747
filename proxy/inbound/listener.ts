import net from 'node:net'
import tls from 'node:tls'
import { peerIdentityFromCert } from '../identity/index.js'
import type { MtlsMode } from '../policy/index.js'
import { setConnectionInfo } from '../engines/common/context.js'
import { serverTlsOptions, type CredentialStore } from '../tls/index.js'

export interface InboundListenerOptions {
  readonly creds: CredentialStore
  /** The HTTP front (the engine's server, never listening itself) that connections are handed to. */
  readonly http: ConnectionSink
  /** The PeerAuthentication mode for the app port, read per connection (it changes with policy). */
  readonly mtlsMode: () => MtlsMode
  readonly onRefused: (reason: string, remote: string) => void
  /** Set when there is nothing to forward to (no inbound.app): every connection is refused with this reason. */
  readonly refuseAll?: string
}

/** What the listener needs of an HTTP front: node:http's Server and the raw engine's front both fit. */
export interface ConnectionSink {
  emit(event: 'connection', socket: net.Socket): boolean
  closeIdleConnections(): void
}

const TLS_HANDSHAKE = 0x16

/**
 * The inbound listener (:15006). Every connection is classified on its first byte: a TLS
 * ClientHello goes to the TLS server (TLS 1.3 only, client cert required and chained to the trust
 * bundle, exactly one SPIFFE URI SAN in a trusted domain); anything else is plaintext, accepted
 * only under PERMISSIVE or DISABLE. STRICT never reads plaintext; DISABLE never does TLS.
 */
export class InboundListener {
  readonly #net: net.Server
  readonly #tls: tls.Server
  readonly #sockets = new Set<net.Socket>()
  readonly #unsubscribe: () => void

  constructor(private readonly opts: InboundListenerOptions) {
    const { creds, http: front, onRefused } = opts
    // Without credentials yet (waiting for the control plane) the TLS server has no context:
    // #classify refuses every connection until the first certificate arrives.
    // requestCert/rejectUnauthorized/ALPN are server options (setSecureContext ignores them), so
    // they are set here even when the certificate itself comes later.
    const { cert: _c, key: _k, ca: _ca, ...serverOnly } = serverTlsOptions({ certPem: '', keyPem: '', caPem: '' } as Parameters<typeof serverTlsOptions>[0])
    this.#tls = tls.createServer({ ...serverOnly, ...(creds.hasCredentials ? serverTlsOptions(creds.current) : {}), handshakeTimeout: 10_000 })
    this.#unsubscribe = creds.onChange((c) => this.#tls.setSecureContext(serverTlsOptions(c)))
    this.#tls.on('secureConnection', (sock: tls.TLSSocket) => {
      // getPeerX509Certificate: only the SAN string and the DER are computed. getPeerCertificate()
      // builds the whole legacy object (three fingerprints, the public key…): 21 → 12 µs a call here.
      const x509 = sock.getPeerX509Certificate()
      const r = peerIdentityFromCert(x509 ? { subjectaltname: x509.subjectAltName, raw: x509.raw } : null, creds.current.trustDomains)
      if (!r.ok) {
        onRefused(r.reason, `${sock.remoteAddress}:${sock.remotePort}`)
        sock.destroy()
        return
      }
      setConnectionInfo(sock, { peer: r.identity, security: 'mutual_tls' })
      front.emit('connection', sock)
    })
    this.#tls.on('tlsClientError', (err: NodeJS.ErrnoException, sock: tls.TLSSocket) => {
      onRefused(`TLS handshake failed: ${err.code ?? err.message}`, `${sock.remoteAddress}:${sock.remotePort}`)
    })
    this.#net = net.createServer({ noDelay: true }, (socket) => this.#classify(socket))
  }

  #classify(socket: net.Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    const first = socket.read(1) as Buffer | null
    if (first === null) {
      socket.once('readable', () => {
        if (!socket.destroyed) this.#classify(socket)
      })
      return
    }
    socket.unshift(first)
    if (this.opts.refuseAll !== undefined) {
      this.opts.onRefused(this.opts.refuseAll, `${socket.remoteAddress}:${socket.remotePort}`)
      socket.destroy()
      return
    }
    if (!this.opts.creds.hasCredentials) {
      this.opts.onRefused('no workload certificate yet (waiting for the control plane)', `${socket.remoteAddress}:${socket.remotePort}`)
      socket.destroy()
      return
    }
    const mode = this.opts.mtlsMode()
    if (first[0] === TLS_HANDSHAKE) {
      if (mode === 'DISABLE') {
        this.opts.onRefused('TLS refused: PeerAuthentication DISABLE', `${socket.remoteAddress}:${socket.remotePort}`)
        socket.destroy()
        return
      }
      this.#tls.emit('connection', socket)
    } else {
      if (mode === 'STRICT') {
        this.opts.onRefused('plaintext refused: PeerAuthentication STRICT', `${socket.remoteAddress}:${socket.remotePort}`)
        socket.destroy()
        return
      }
      setConnectionInfo(socket, { peer: null, security: 'none' })
      this.opts.http.emit('connection', socket)
    }
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#net.once('error', reject)
      this.#net.listen({ port, host, exclusive: true }, () => {
        this.#net.removeListener('error', reject)
        resolve((this.#net.address() as net.AddressInfo).port)
      })
    })
  }

  get listening(): boolean {
    return this.#net.listening
  }

  async close(): Promise<void> {
    this.#unsubscribe()
    const closed = new Promise<void>((r) => this.#net.close(() => r()))
    this.opts.http.closeIdleConnections()
    for (const s of this.#sockets) s.destroy()
    await closed
  }
}
