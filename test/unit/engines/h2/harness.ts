// The h2 engine's own harness, before (and beside) the sidecar wiring: a real node:http2 server as
// the app, the front fed by a real net.Server (optionally reading the first bytes and handing them
// back, as the listeners' protocol detection does) or a real TLS server (ALPN h2, client certs from
// the test PKI), and a hand-made chain of the real stages: metrics → rescue → sanitize → a fixed
// route → the h2 terminal. Real sockets only; every server is closed by the test that made it.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import { compose, type Handler, type RequestContext, type RouteTarget, type Stage, type UpstreamPool } from '../../../../proxy/pipeline/index.js'
import { createMetricsStage, createRescueStage, createSanitizeStage } from '../../../../proxy/stages/index.js'
import { SidecarMetrics } from '../../../../proxy/telemetry/index.js'
import { setConnectionInfo, DEFAULT_FRONT_LIMITS, type FrontLimits } from '../../../../proxy/engines/common/index.js'
import { createH2Front, createH2Upstream, type H2Front, type H2Upstream } from '../../../../proxy/engines/h2/index.js'
import { buildCredentials, CredentialStore, serverTlsOptions } from '../../../../proxy/tls/index.js'
import { peerIdentityFromCert } from '../../../../proxy/identity/index.js'
import type { TestPki } from '../../../helpers/pki.js'

export interface H2App {
  readonly port: number
  readonly address: string
  /** TCP connections (sessions) the app accepted. */
  sessions: number
  streams: number
  readonly seen: IncomingHttpHeaders[]
  close(): Promise<void>
}

export type AppStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void

/** A plaintext HTTP/2 app (h2c prior knowledge), as the local app behind an inbound sidecar. */
export async function startH2App(onStream: AppStream): Promise<H2App> {
  const server = http2.createServer()
  const app: H2App = {
    port: 0,
    address: '',
    sessions: 0,
    streams: 0,
    seen: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy()
        server.close(() => resolve())
      }),
  }
  const live = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => {
    app.sessions++
    live.add(s)
    s.once('close', () => live.delete(s))
  })
  server.on('stream', (stream, headers) => {
    app.streams++
    app.seen.push(headers)
    stream.on('error', () => {})
    onStream(stream, headers)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  Object.assign(app, { port, address: `127.0.0.1:${port}` })
  return app
}

const POOL: UpstreamPool = { stats: { connected: 0, pending: 0, running: 0 }, close: async () => {}, destroy: async () => {} }

export function routeTo(address: string, o: Partial<RouteTarget> = {}): RouteTarget {
  return { cluster: 'app', address, dispatcher: POOL, timeoutMs: 5000, idleTimeoutMs: 5000, identities: null, servername: null, connectTimeoutMs: 1000, ...o }
}

/** The route stage of a test: every request goes to `route`; the cluster label follows it. */
function fixedRoute(route: () => RouteTarget): Stage {
  return (next: Handler) => async (ctx: RequestContext) => {
    ctx.route = route()
    ctx.cluster = ctx.route.cluster
    ctx.upstreamHost = ctx.route.address
    return next(ctx)
  }
}

export interface ChainOptions {
  /** Runs after sanitize, before the route: a test's own stage (a denial, a delay). */
  readonly before?: Stage
  readonly metrics?: SidecarMetrics
  /** Every context that ran, after it finished. */
  readonly seen?: RequestContext[]
}

export function testChain(upstream: H2Upstream, route: () => RouteTarget, o: ChainOptions = {}): Handler {
  const record: Stage = (next) => async (ctx) => {
    try {
      await next(ctx)
    } finally {
      o.seen?.push(ctx)
    }
  }
  const stages: Stage[] = [record]
  if (o.metrics) stages.push(createMetricsStage({ metrics: o.metrics, direction: 'outbound', self: { workload: 'orders', namespace: 'shop', principal: 'spiffe://cluster.local/ns/shop/sa/orders', app: 'orders', service: 'unknown', serviceName: 'unknown' } }))
  stages.push(createRescueStage(), createSanitizeStage({ direction: 'outbound', pathNormalization: 'MERGE_SLASHES' }))
  if (o.before) stages.push(o.before)
  stages.push(fixedRoute(route))
  return compose(stages, upstream.handler)
}

export interface FrontHarness {
  readonly port: number
  readonly front: H2Front
  /** TCP connections the listener accepted. */
  accepted: number
  readonly parserErrors: { code: string }[]
  close(): Promise<void>
}

/**
 * A front behind a real listener. `sniff`: the listener reads the first bytes and unshifts them
 * before handing the socket over (what protocol detection does); `tls`: a TLS server with ALPN h2
 * whose verified peer identity is set on the socket, as the inbound listener does.
 */
export async function startFront(handler: () => Handler, o: { sniff?: boolean; limits?: FrontLimits; tls?: { pki: TestPki; serverId: string } } = {}): Promise<FrontHarness> {
  const parserErrors: { code: string }[] = []
  const front = createH2Front({ direction: o.tls ? 'inbound' : 'outbound', handler, onParserError: (e) => void parserErrors.push({ code: e.code }), limits: o.limits ?? DEFAULT_FRONT_LIMITS })
  const sockets = new Set<net.Socket>()
  let tlsServer: tls.Server | null = null
  if (o.tls) {
    const leaf = await o.tls.pki.issue(o.tls.serverId)
    const creds = buildCredentials({ certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: o.tls.pki.caPem }, o.tls.pki.trustDomain, Date.now())
    tlsServer = tls.createServer(serverTlsOptions(creds))
    tlsServer.on('secureConnection', (sock: tls.TLSSocket) => {
      const x = sock.getPeerX509Certificate()
      const r = peerIdentityFromCert(x ? { subjectaltname: x.subjectAltName, raw: x.raw } : null, creds.trustDomains)
      if (!r.ok || sock.alpnProtocol !== 'h2') return void sock.destroy()
      setConnectionInfo(sock, { peer: r.identity, security: 'mutual_tls' })
      front.emit('connection', sock)
    })
    tlsServer.on('tlsClientError', () => {})
  }
  const h: FrontHarness = {
    port: 0,
    front,
    accepted: 0,
    parserErrors,
    close: async () => {
      front.closeAllConnections()
      await front.close()
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    h.accepted++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    if (tlsServer) return void tlsServer.emit('connection', socket)
    if (!o.sniff) return void front.emit('connection', socket)
    const onReadable = (): void => {
      const first = socket.read(1) as Buffer | null
      if (first === null) return
      socket.removeListener('readable', onReadable)
      socket.unshift(first)
      front.emit('connection', socket)
    }
    socket.on('readable', onReadable)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  Object.assign(h, { port: (server.address() as AddressInfo).port })
  return h
}

/** The sidecar's credentials for an upstream: a leaf for `id` from the test PKI. */
export async function credentialsFor(pki: TestPki, id: string): Promise<CredentialStore> {
  const leaf = await pki.issue(id)
  return new CredentialStore(buildCredentials({ certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: pki.caPem }, pki.trustDomain, Date.now()))
}

export interface H2Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  trailers: IncomingHttpHeaders | null
  /** RST_STREAM code when the stream was reset, else null. */
  reset: number | null
  /** The response ended with its HEADERS frame (a trailers-only or body-less response). */
  endAfterHeaders: boolean
}

/** One request on a client session (h2c to `port`), collecting everything that comes back. */
export function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string | null): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':authority': 'app.shop', ...headers }, { endStream: body === undefined || body === null })
    const chunks: Buffer[] = []
    const out: H2Reply = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: null, reset: null, endAfterHeaders: false }
    req.on('response', (h, flags: number) => {
      out.status = Number(h[':status'])
      out.headers = h
      out.endAfterHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0
    })
    req.on('trailers', (t) => (out.trailers = t))
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('error', () => {})
    req.on('close', () => {
      out.body = Buffer.concat(chunks)
      if (req.rstCode !== undefined && req.rstCode !== http2.constants.NGHTTP2_NO_ERROR) out.reset = req.rstCode
      if (out.status === 0 && out.reset === null) return reject(new Error('stream closed without a response'))
      resolve(out)
    })
    if (body !== undefined && body !== null) req.end(body)
  })
}

export function connect(port: number): ClientHttp2Session {
  const s = http2.connect(`http://127.0.0.1:${port}`)
  s.on('error', () => {})
  return s
}

export function closeSession(s: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve()
    s.once('close', () => resolve())
    s.close()
    setTimeout(() => s.destroy(), 500).unref()
  })
}

/** One gRPC message: flag 0, 4-byte length, payload. */
export function grpcMessage(payload: Buffer | string): Buffer {
  const p = Buffer.from(payload)
  const m = Buffer.alloc(5 + p.length)
  m.writeUInt32BE(p.length, 1)
  p.copy(m, 5)
  return m
}

export { createH2Upstream, SidecarMetrics }
