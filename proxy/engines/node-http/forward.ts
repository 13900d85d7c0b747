import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex, Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { FLAGS, proxyError, responseExtras, type ProxyError, type RequestContext } from '../../pipeline/index.js'
import { isConnectPhaseError } from './pools.js'
import { kDispatched, kParserError, type FrontSocket } from './server.js'
import { bodyBytesForwarded, connectionNamed, isSidecarOwnedHeader, passesResponseHeader, tunnel, upstreamFailure } from '../common/index.js'

export interface ForwardOptions {
  /** Time to wait for the upstream's response headers (Envoy's route timeout): 504 UT. */
  readonly timeoutMs: number
  /** Idle time between body chunks in either direction before the stream is reset. */
  readonly idleTimeoutMs: number
}

function responseHeaders(h: Record<string, string | string[] | undefined>, fromApp: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const named = connectionNamed(h.connection)
  for (const k in h) {
    const v = h[k]
    if (v === undefined || !passesResponseHeader(k, named, fromApp)) continue
    out[k] = v
  }
  return out
}

/** Maps an undici/socket error before response headers to the proxy's catalog. */
export function upstreamError(err: unknown): ProxyError {
  const e = err as { code?: string; name?: string; message?: string }
  const code = e?.code ?? ''
  if (code === 'REMORA_ERR_UPSTREAM_SECURE_NAMING') return upstreamFailure({ kind: 'secure-naming', message: e.message ?? '' }, err)
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return upstreamFailure({ kind: 'timeout' }, err)
  if (isConnectPhaseError(err)) return upstreamFailure({ kind: 'connect', reason: code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect timeout' : code || 'TLS handshake failed' }, err)
  if (e?.name === 'HTTPParserError' || code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_HEADERS_OVERFLOW' || e?.message === 'bad upgrade') {
    return upstreamFailure({ kind: 'protocol' }, err)
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return upstreamFailure({ kind: 'request-framing' }, err)
  return upstreamFailure({ kind: 'reset', reason: code || undefined }, err)
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
    if (v === undefined || k === 'connection' || k === 'upgrade' || k === 'keep-alive' || (fromApp && isSidecarOwnedHeader(k))) continue
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
        void tunnel(ctx, down, socket).then(resolve)
      },
      onResponseStart(c, statusCode, headers, statusMessage) {
        if (statusCode < 200) return // 1xx: 100-continue is answered by the sidecar itself
        started = true
        ctx.upstreamMs = performance.now() - t0
        const out = responseHeaders(headers as Record<string, string | string[] | undefined>, ctx.direction === 'inbound')
        if (upgradeSocket) out.connection = 'close'
        const extra = responseExtras(ctx, statusCode, false)
        if (extra !== null) Object.assign(out, extra)
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
