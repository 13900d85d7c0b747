import http2, { type ClientHttp2Session } from 'node:http2'
import net from 'node:net'
import type tls from 'node:tls'
import type { RouteTarget } from '../../pipeline/index.js'
import { createMtlsDialer, type CredentialStore } from '../../tls/index.js'
import { splitAddress, type UpstreamFailure } from '../common/index.js'

// Upstream HTTP/2 sessions: one per (address, identities, SNI), shared by every request to that
// target and multiplexed (concurrent requests ride one TCP connection). A session is usable once
// the server's SETTINGS arrived (its connection preface); it leaves the pool on GOAWAY, error or
// close, and the next request makes a new one. mTLS sessions are dialled by the mesh's dialer
// (TLS 1.3, the current credentials, secure naming on the identities) offering ALPN h2 only.

/** Settings of our side of an upstream session. */
export const H2_UPSTREAM = {
  /** Streams we accept from the server (pushes are refused: enablePush false). */
  maxConcurrentStreams: 100,
  /** Until the server's SETTINGS say otherwise, at most this many streams in flight (RFC 9113 §6.5.2 leaves it open; nghttp2 assumes 100). */
  peerMaxConcurrentStreams: 100,
  connectionWindowSize: 1 << 20,
  maxSessionMemoryMb: 10,
  /** A session with no stream and no byte either way this long is closed (GOAWAY): Envoy's upstream idle_timeout, 1 h. */
  idleTimeoutMs: 3_600_000,
} as const

export interface H2Session {
  readonly key: string
  readonly session: ClientHttp2Session
  /** The server's SETTINGS arrived: streams failing after this are resets, not connect failures. */
  established: boolean
  /** Why the session failed before it was established (the failure every stream on it reports). */
  failure: UpstreamFailure | null
  /** Last-Stream-ID of a GOAWAY received; streams above it were never processed (safe to retry). */
  goawayLastStreamId: number | null
  /** Streams in flight. */
  streams: number
}

const keys = new WeakMap<RouteTarget, string>()

/** The pool key of a target, computed once per RouteTarget (they are built per snapshot). */
function keyOf(route: RouteTarget): string {
  let k = keys.get(route)
  if (k === undefined) keys.set(route, (k = route.identities === null ? `h2c|${route.address}` : `h2|${route.address}|${route.identities.join(',')}|${route.servername ?? ''}`))
  return k
}

function connectFailure(err: unknown): UpstreamFailure {
  const e = err as { code?: string; message?: string; cause?: unknown }
  const code = e?.code ?? ''
  if (code === 'REMORA_ERR_UPSTREAM_SECURE_NAMING') return { kind: 'secure-naming', message: e.message ?? '' }
  return { kind: 'connect', reason: code || 'TLS handshake failed' }
}

export class H2SessionPool {
  readonly #sessions = new Map<string, H2Session>()
  #created = 0
  #closed = false

  constructor(private readonly creds: CredentialStore) {}

  /** The live session for `route`, or a new one (connecting; requests queue on it until it is up). */
  session(route: RouteTarget): H2Session {
    const key = keyOf(route)
    const hit = this.#sessions.get(key)
    if (hit !== undefined && !hit.session.closed && !hit.session.destroyed) return hit
    return this.#open(key, route)
  }

  /**
   * After a config swap: the mTLS sessions to targets no cluster names any more (an endpoint that
   * left, identities that changed) get a GOAWAY (streams in flight finish) and leave the pool, as
   * the HTTP/1.1 pools' retain() closes theirs; the next request to a target still there reuses its
   * session. Sessions to the local app (h2c) are kept: its targets are made per port on demand.
   * Returns how many were closed.
   */
  retain(targets: Iterable<RouteTarget>): number {
    const keep = new Set<string>()
    for (const t of targets) keep.add(keyOf(t))
    let closed = 0
    for (const [key, s] of this.#sessions) {
      if (keep.has(key) || key.startsWith('h2c|')) continue
      this.#sessions.delete(key)
      closed++
      if (!s.session.closed && !s.session.destroyed) s.session.close()
    }
    return closed
  }

  /** Removes `s` from the pool (a GOAWAY, a failure) if it is still the one there. */
  drop(s: H2Session): void {
    if (this.#sessions.get(s.key) === s) this.#sessions.delete(s.key)
  }

  #open(key: string, route: RouteTarget): H2Session {
    const { host, port } = splitAddress(route.address)
    const mtls = route.identities !== null
    const dial: () => net.Socket = mtls
      ? createMtlsDialer({ host, port, identities: route.identities!, servername: route.servername ?? host, alpn: ['h2'] }, this.creds)
      : () => net.connect({ host, port, noDelay: true })
    let socket: net.Socket | null = null
    const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
    const session = http2.connect(`${mtls ? 'https' : 'http'}://${authority}`, {
      createConnection: () => (socket = dial()),
      settings: { enablePush: false, maxConcurrentStreams: H2_UPSTREAM.maxConcurrentStreams },
      peerMaxConcurrentStreams: H2_UPSTREAM.peerMaxConcurrentStreams,
      maxSessionMemory: H2_UPSTREAM.maxSessionMemoryMb,
    })
    const s: H2Session = { key, session, established: false, failure: null, goawayLastStreamId: null, streams: 0 }
    this.#created++
    this.#sessions.set(key, s)
    const fail = (f: UpstreamFailure): void => {
      if (s.established || s.failure !== null) return
      s.failure = f
      this.drop(s)
      session.destroy()
    }
    const timer = setTimeout(() => fail({ kind: 'connect', reason: 'connect timeout' }), route.connectTimeoutMs)
    if (mtls) {
      // The dialer offers h2 only; a server that picks nothing speaks no HTTP/2 to us.
      ;(socket as tls.TLSSocket | null)?.once('secureConnect', () => {
        const alpn = (socket as tls.TLSSocket).alpnProtocol
        if (alpn !== 'h2') fail({ kind: 'connect', reason: `ALPN h2 not negotiated (${alpn === false ? 'none' : String(alpn)})` })
      })
    }
    session.once('remoteSettings', () => {
      clearTimeout(timer)
      if (s.failure !== null) return
      s.established = true
      try {
        session.setLocalWindowSize(H2_UPSTREAM.connectionWindowSize)
      } catch {
        // closing already
      }
    })
    session.on('error', (err: unknown) => fail(connectFailure(err)))
    session.on('goaway', (_code: number, lastStreamId: number) => {
      s.goawayLastStreamId = lastStreamId
      this.drop(s)
    })
    session.once('close', () => {
      clearTimeout(timer)
      // Closed before its SETTINGS: TLS 1.3 reports a refused client certificate this way.
      fail({ kind: 'connect', reason: 'connection closed before the HTTP/2 preface' })
      this.drop(s)
    })
    // Idle, and no stream on it: close it (it would otherwise live as long as the server lets it).
    session.setTimeout(H2_UPSTREAM.idleTimeoutMs, () => {
      if (s.streams === 0) {
        this.drop(s)
        session.close()
      }
    })
    // An idle session must not keep the process alive; streams ref it while they run.
    session.unref()
    return s
  }

  stats(): { key: string; established: boolean; streams: number }[] {
    return [...this.#sessions.values()].map((s) => ({ key: s.key, established: s.established, streams: s.streams }))
  }

  get created(): number {
    return this.#created
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const all = [...this.#sessions.values()]
    this.#sessions.clear()
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.session.destroyed) return resolve()
            s.session.once('close', () => resolve())
            s.session.close()
          }),
      ),
    )
  }

  /** Destroys every session at once (shutdown after the drain). */
  destroy(): void {
    for (const s of this.#sessions.values()) s.session.destroy()
    this.#sessions.clear()
  }
}
