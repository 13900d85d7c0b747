// Test data for the stage unit tests: a RequestContext built by the listeners' own context factory
// (proxy/engines/common/context.ts, the one both engines use) from plain request data, a response double that
// records what a stage writes, and a recording `next`. These are doubles for a stage's inputs, not
// mocks of net/tls/http: no socket is opened anywhere in test/unit/stages.
import { createHash } from 'node:crypto'
import { createContext, setConnectionInfo } from '../../../proxy/engines/common/context.js'
// node:http's `req.headers` from raw header lines, exactly as the raw engine builds it for the stages.
import { headersObject } from '../../../proxy/engines/raw/headers.js'
import { parseSpiffeId, type PeerIdentity } from '../../../proxy/identity/index.js'
import { isProxyError, type Direction, type DownstreamResponse, type Handler, type ProxyError, type RequestContext, type RouteTarget, type UpstreamPool } from '../../../proxy/pipeline/index.js'

export const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend'
export const BATCH = 'spiffe://cluster.local/ns/batch/sa/worker'
export const OWN_ID = 'spiffe://cluster.local/ns/shop/sa/orders'

/** A verified mesh peer, as the inbound listener derives it from a client certificate. */
export function peer(uri: string = FRONTEND): PeerIdentity {
  const id = parseSpiffeId(uri)
  if (!id) throw new Error(`test: not a SPIFFE ID: ${uri}`)
  return { ...id, certHash: createHash('sha256').update(uri).digest('hex') }
}

export interface WrittenHead {
  readonly status: number
  readonly headers: Record<string, string | number>
}

/** The downstream response double: writeHead/end/destroy are recorded, headersSent follows writeHead. */
export interface RecordingResponse extends DownstreamResponse {
  readonly heads: WrittenHead[]
  readonly bodies: (string | undefined)[]
  destroyCalls: number
}

export function recordingResponse(o: { headersSent?: boolean } = {}): RecordingResponse {
  let sent = o.headersSent ?? false
  let destroyed = false
  const res: RecordingResponse = {
    statusCode: 200,
    get headersSent() {
      return sent
    },
    get destroyed() {
      return destroyed
    },
    heads: [],
    bodies: [],
    destroyCalls: 0,
    writeHead(status, headers) {
      if (sent) throw new Error('test: writeHead after the head was sent')
      sent = true
      res.statusCode = status
      res.heads.push({ status, headers: { ...headers } })
      return res
    },
    end(body) {
      res.bodies.push(body)
      return res
    },
    destroy() {
      destroyed = true
      res.destroyCalls++
      return res
    },
  }
  return res
}

export interface RequestOptions {
  readonly direction?: Direction
  readonly method?: string
  /** The request target as received (origin-form or absolute-form). */
  readonly target?: string
  /** Header lines as `req.rawHeaders`; a Host line is added first unless `host: null`. */
  readonly rawHeaders?: readonly string[]
  /** The Host line's value; null: no Host line at all. Default `orders.shop`. */
  readonly host?: string | null
  readonly peer?: PeerIdentity | null
  readonly sourceIp?: string
  readonly sourcePort?: number
  readonly localPort?: number
  readonly httpVersion?: string
  readonly headersSent?: boolean
}

export type TestContext = RequestContext & { readonly res: RecordingResponse }

/** A context as a listener hands it to the chain: nothing set by any stage yet. */
export function requestContext(o: RequestOptions = {}): TestContext {
  const host = o.host === undefined ? 'orders.shop' : o.host
  const rawHeaders = [...(host === null ? [] : ['Host', host]), ...(o.rawHeaders ?? [])]
  const socket = { remoteAddress: o.sourceIp ?? '10.0.0.7', remotePort: o.sourcePort ?? 40123, localPort: o.localPort ?? 15006 }
  const p = o.peer ?? null
  setConnectionInfo(socket, { peer: p, security: p ? 'mutual_tls' : 'none' })
  const req = { method: o.method ?? 'GET', url: o.target ?? '/orders', headers: headersObject(rawHeaders), rawHeaders, httpVersion: o.httpVersion ?? '1.1', socket }
  return createContext(o.direction ?? 'inbound', req, recordingResponse({ headersSent: o.headersSent ?? false }), null) as TestContext
}

/**
 * A context as the stages after `sanitize` see it: authority, path, query, request id and the
 * forwarded headers filled in (as sanitize would), then `over` on top.
 */
export function sanitizedContext(o: RequestOptions = {}, over: Partial<RequestContext> = {}): TestContext {
  const ctx = requestContext(o)
  const host = o.host === undefined ? 'orders.shop' : (o.host ?? '')
  const q = ctx.target.indexOf('?')
  const headers: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(ctx.req.headers)) if (v !== undefined) headers[k] = v
  Object.assign(ctx, {
    authority: host,
    host: host.replace(/:\d+$/, ''),
    hostPort: /:(\d+)$/.exec(host) ? Number(/:(\d+)$/.exec(host)![1]) : null,
    path: q < 0 ? ctx.target : ctx.target.slice(0, q),
    query: q < 0 ? '' : ctx.target.slice(q),
    requestId: 'req-1',
    headers,
    ...over,
  })
  return ctx
}

/** A `next` that records the contexts it was called with (and what it saw when called). */
export interface RecordingNext extends Handler {
  readonly calls: RequestContext[]
}

export function recordingNext(body?: (ctx: RequestContext) => void | Promise<void>): RecordingNext {
  const calls: RequestContext[] = []
  const next = async (ctx: RequestContext) => {
    calls.push(ctx)
    if (body) await body(ctx)
  }
  return Object.assign(next, { calls })
}

/** The ProxyError a handler rejects with (fails the test when it resolves or throws anything else). */
export async function proxyErrorOf(p: Promise<unknown>): Promise<ProxyError> {
  let caught: unknown
  try {
    await p
  } catch (err) {
    caught = err
  }
  if (caught === undefined) throw new Error('test: expected the handler to reject with a ProxyError, it resolved')
  if (!isProxyError(caught)) throw new Error(`test: expected a ProxyError, got ${String(caught)}`)
  return caught
}

/** An upstream pool that is only data (the route stage never touches it). */
export function fakePool(): UpstreamPool {
  return { stats: { connected: 0, pending: 0, running: 0 }, close: async () => {}, destroy: async () => {} }
}

export function routeTarget(cluster: string, address: string): RouteTarget {
  return { cluster, address, dispatcher: fakePool(), timeoutMs: 15_000, idleTimeoutMs: 60_000, identities: null, servername: null, connectTimeoutMs: 5_000 }
}
