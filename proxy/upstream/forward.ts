import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex, Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { proxyError, FLAGS, type ProxyError, type RequestContext } from '../pipeline/index.js'
import { isConnectPhaseError } from './pools.js'
import { kDispatched, kParserError, type FrontSocket } from '../http/server.js'
import { bodyBytesForwarded } from '../http/read-buffers.js'

export interface ForwardOptions {
  /** Time to wait for the upstream's response headers (Envoy's route timeout): 504 UT. */
  readonly timeoutMs: number
  /** Idle time between body chunks in either direction before the stream is reset. */
  readonly idleTimeoutMs: number
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Connection. Names listed in `Connection` go too.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'trailer', 'proxy-authenticate', 'proxy-authorization'])

// From the local app (inbound), the sidecar's own x-remora-* / x-envoy-* are dropped too: an app cannot imitate a denial.
const isOwned = (k: string): boolean => k.startsWith('x-remora-') || k.startsWith('x-envoy-')

function responseHeaders(h: Record<string, string | string[] | undefined>, fromApp: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const conn = h.connection
  const named = conn ? new Set(String(conn).toLowerCase().split(',').map((s) => s.trim())) : null
  for (const k in h) {
    const v = h[k]
    if (v === undefined || HOP_BY_HOP.has(k) || (named && named.has(k)) || (fromApp && isOwned(k))) continue
    out[k] = v
  }
  return out
}

/** Maps an undici/socket error before response headers to the proxy's catalog. */
export function upstreamError(err: unknown): ProxyError {
  const e = err as { code?: string; name?: string; message?: string }
  const code = e?.code ?? ''
  if (code === 'REMORA_ERR_UPSTREAM_SECURE_NAMING') return proxyError('REMORA_ERR_UPSTREAM_SECURE_NAMING', e.message, err)
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return proxyError('REMORA_ERR_UPSTREAM_TIMEOUT', undefined, err)
  if (isConnectPhaseError(err)) {
    const reason = code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect timeout' : code || 'TLS handshake failed'
    return proxyError('REMORA_ERR_UPSTREAM_CONNECT', `reset reason: ${reason}`, err)
  }
  if (e?.name === 'HTTPParserError' || code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_HEADERS_OVERFLOW' || e?.message === 'bad upgrade') {
    return proxyError('REMORA_ERR_UPSTREAM_PROTOCOL', undefined, err)
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return proxyError('REMORA_ERR_BAD_FRAMING', 'request body length does not match Content-Length', err)
  return proxyError('REMORA_ERR_UPSTREAM_RESET', code ? `reset reason: ${code}` : undefined, err)
}

// This is the node:http engine: its front made the context, so req/res are node's own objects.
const nodeReq = (ctx: RequestContext): IncomingMessage => ctx.req as IncomingMessage
const nodeRes = (ctx: RequestContext): ServerResponse => ctx.res as ServerResponse

async function* countingBody(ctx: RequestContext): AsyncGenerator<Buffer> {
  for await (const chunk of nodeReq(ctx) as AsyncIterable<Buffer>) {
    ctx.bytesReceived += chunk.length
    bodyBytesForwarded(chunk.length)
    yield chunk
  }
}

function hasRequestBody(ctx: RequestContext): boolean {
  const h = ctx.req.headers
  if (h['transfer-encoding'] !== undefined) return true
  const cl = h['content-length']
  return cl !== undefined && cl !== '0'
}

function writeUpgradeHead(socket: Duplex, statusCode: number, headers: Record<string, string | string[] | undefined>, fromApp: boolean): void {
  let head = `HTTP/1.1 ${statusCode} Switching Protocols\r\n`
  for (const k in headers) {
    const v = headers[k]
    if (v === undefined || k === 'connection' || k === 'upgrade' || k === 'keep-alive' || (fromApp && isOwned(k))) continue
    for (const one of Array.isArray(v) ? v : [v]) head += `${k}: ${one}\r\n`
  }
  head += `connection: upgrade\r\nupgrade: ${String(headers.upgrade ?? 'websocket')}\r\n\r\n`
  socket.write(head)
}

/**
 * Sends the request to `dispatcher` and streams the response back (no buffering in either
 * direction, back-pressure both ways). Rejects with a ProxyError only before response headers;
 * after that a failure resets the downstream stream and records the flag.
 */
export async function forward(ctx: RequestContext, dispatcher: Dispatcher, opts: ForwardOptions, upgradeSocket?: Duplex): Promise<void> {
  const req = nodeReq(ctx)
  const front = req.socket as FrontSocket
  const withBody = hasRequestBody(ctx)
  if (withBody) {
    // Let the parser finish the bytes already received: a bad chunk right behind the headers must
    // turn into a 400 here, before anything is sent upstream.
    await new Promise<void>((r) => setImmediate(r))
  }
  const parked = front[kParserError]
  if (parked) throw proxyError(parked)
  if (req.destroyed) {
    ctx.flags.push(FLAGS.DownstreamConnectionTermination)
    return
  }
  front[kDispatched] = true
  try {
    await dispatch(ctx, dispatcher, opts, withBody, upgradeSocket)
  } finally {
    front[kDispatched] = false
  }
}

function dispatch(ctx: RequestContext, dispatcher: Dispatcher, opts: ForwardOptions, withBody: boolean, upgradeSocket?: Duplex): Promise<void> {
  const req = nodeReq(ctx)
  const res = nodeRes(ctx)
  return new Promise<void>((resolve, reject) => {
    let started = false
    let controller: Dispatcher.DispatchController | null = null
    const t0 = performance.now()
    const onClose = (): void => {
      if (!res.writableFinished && !upgradeSocket) {
        if (!ctx.flags.includes(FLAGS.DownstreamConnectionTermination)) ctx.flags.push(FLAGS.DownstreamConnectionTermination)
        controller?.abort(new Error('downstream connection closed'))
        resolve()
      }
    }
    res.once('close', onClose)
    const body = withBody ? countingBody(ctx) : null
    if (body && req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue()

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c
      },
      onRequestUpgrade(_c, statusCode, headers, socket) {
        started = true
        ctx.upstreamMs = performance.now() - t0
        const down = upgradeSocket!
        res.statusCode = statusCode
        writeUpgradeHead(down, statusCode, headers as Record<string, string | string[] | undefined>, ctx.direction === 'inbound')
        down.on('data', (c: Buffer) => {
          ctx.bytesReceived += c.length
          bodyBytesForwarded(c.length)
        })
        socket.on('data', (c: Buffer) => {
          ctx.bytesSent += c.length
          bodyBytesForwarded(c.length)
        })
        down.pipe(socket)
        socket.pipe(down)
        let closed = 0
        const done = (): void => {
          if (++closed === 1) {
            socket.destroy()
            down.destroy()
            resolve()
          }
        }
        socket.once('close', done)
        down.once('close', done)
        socket.on('error', () => socket.destroy())
        down.on('error', () => down.destroy())
      },
      onResponseStart(c, statusCode, headers, statusMessage) {
        if (statusCode < 200) return // 1xx: 100-continue is answered by the sidecar itself
        started = true
        ctx.upstreamMs = performance.now() - t0
        const out = responseHeaders(headers as Record<string, string | string[] | undefined>, ctx.direction === 'inbound')
        if (upgradeSocket) out.connection = 'close'
        // A failed response links to its trace for mesh peers (the `trace` stage sets traceLink).
        if (statusCode >= 500 && ctx.traceLink !== null && ctx.peer !== null) out['x-remora-trace'] = ctx.traceLink
        res.writeHead(statusCode, statusMessage || undefined, out)
        if (res.writableNeedDrain) c.pause()
      },
      onResponseData(c, chunk) {
        ctx.bytesSent += chunk.length
        bodyBytesForwarded(chunk.length)
        if (!res.write(chunk)) {
          c.pause()
          res.once('drain', () => c.resume())
        }
      },
      onResponseEnd(_c, trailers) {
        if (trailers && Object.keys(trailers).length > 0) res.addTrailers(trailers as Record<string, string>)
        res.end()
        res.removeListener('close', onClose)
        resolve()
      },
      onResponseError(_c, err) {
        res.removeListener('close', onClose)
        if (!started) {
          reject(upstreamError(err))
          return
        }
        // Headers already went out: the only honest signal left is a reset.
        ctx.flags.push(FLAGS.UpstreamRemoteReset)
        res.destroy()
        resolve()
      },
    }

    dispatcher.dispatch(
      {
        path: ctx.path + ctx.query,
        method: ctx.method,
        headers: ctx.headers,
        body: body as unknown as Readable | null, // undici accepts async iterables; its types lag
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.idleTimeoutMs,
        upgrade: upgradeSocket ? String(req.headers.upgrade ?? 'websocket') : null,
      },
      handler,
    )
  })
}
