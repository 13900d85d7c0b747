import type net from 'node:net'
import { FLAGS, proxyError, responseExtras, type Handler, type ProxyError, type RequestContext, type RouteTarget } from '../../pipeline/index.js'
import { bodyBytesForwarded, tunnel as pipeTunnel, upstreamFailure } from '../common/index.js'
import { RawRequest, RawResponse } from './exchange.js'
import { chunkFrame, headerLines, responseHeadFacts, trailerLines } from './headers.js'
import { RawPool, UpstreamConnectError, type ResponseHandler, type UpstreamConnection } from './pool.js'
import { hasCode } from '../../errors/index.js'

const CRLF = '\r\n'

function connectError(err: unknown): ProxyError {
  if (hasCode(err, 'REMORA_ERR_UPSTREAM_SECURE_NAMING')) return upstreamFailure({ kind: 'secure-naming', message: (err as Error).message }, err)
  if (hasCode(err, 'REMORA_ERR_UPSTREAM_CONNECT')) return upstreamFailure({ kind: 'connect', reason: (err as UpstreamConnectError).reason }, err)
  return proxyError('REMORA_ERR_UPSTREAM_CONNECT', undefined, err)
}

function requestHead(ctx: RequestContext, req: RawRequest, upgrade: string | null): string {
  let head = `${ctx.method} ${ctx.path}${ctx.query} HTTP/1.1\r\n`
  try {
    head += headerLines(ctx.headers)
  } catch (err) {
    if (hasCode(err, 'REMORA_ERR_INTERNAL')) throw proxyError('REMORA_ERR_INTERNAL', (err as Error).message, err)
    throw err
  }
  if (req.chunked) head += 'transfer-encoding: chunked\r\n'
  if (upgrade !== null) head += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`
  return head + CRLF
}

// Terminal of the raw engine: the request goes to the endpoint the route stage chose, on a pooled
// connection of that endpoint (so each request re-picks, whatever the downstream connection).
// Heads are rebuilt from the context; bodies pass through (re-chunked where the framing needs it).
export function createRawUpstreamHandler(): Handler {
  return async function upstream(ctx: RequestContext) {
    const route = ctx.route
    if (!route) throw proxyError('REMORA_ERR_INTERNAL', 'no route chosen')
    const { req, res } = ctx
    const pool = route.dispatcher
    if (!(pool instanceof RawPool) || !(req instanceof RawRequest) || !(res instanceof RawResponse)) throw proxyError('REMORA_ERR_INTERNAL', 'raw engine: request or pool from another engine')
    if (res.destroyed) {
      ctx.flags.push(FLAGS.DownstreamConnectionTermination)
      return
    }
    const upgrade = ctx.upgradeSocket !== null ? String(req.headers.upgrade ?? 'websocket') : null
    const head = requestHead(ctx, req, upgrade)
    // A reused connection may have been closed by the server meanwhile: a request without a body
    // is sent once more on a fresh one (nothing of it can have been processed).
    for (let attempt = 0; ; attempt++) {
      if (req.parserError) throw proxyError(req.parserError)
      let conn = attempt === 0 ? pool.takeIdle() : null
      const reused = conn !== null
      if (conn === null) {
        try {
          conn = await pool.connect()
        } catch (err) {
          throw connectError(err)
        }
      }
      if (req.parserError || res.destroyed) {
        pool.release(conn)
        if (req.parserError) throw proxyError(req.parserError)
        ctx.flags.push(FLAGS.DownstreamConnectionTermination)
        return
      }
      const outcome = await exchange(ctx, req, res, conn, pool, route, head, upgrade, reused && !req.hasBody)
      if (outcome !== 'retry') return
    }
  }
}

function exchange(
  ctx: RequestContext,
  req: RawRequest,
  res: RawResponse,
  conn: UpstreamConnection,
  pool: RawPool,
  route: RouteTarget,
  head: string,
  upgrade: string | null,
  mayRetry: boolean,
): Promise<'retry' | undefined> {
  return new Promise((resolve, reject) => {
    const up = conn.socket
    const t0 = performance.now()
    let settled = false
    let requestSent = !req.hasBody
    let upstreamKeepAlive = false
    let keepAliveHintMs: number | null = null
    let downChunked = false
    /** The pending 'drain' listeners of a back-pressure wait: upstream writable (request body), downstream writable (response). */
    let drainUp: (() => void) | null = null
    let drainDown: (() => void) | null = null
    let head101: string | null = null

    const settle = (): boolean => {
      if (settled) return false
      settled = true
      clearTimeout(timer)
      res.onAbort = null
      req.detach()
      // A wait for a drain ends with the exchange. The response can complete in the read that made
      // the downstream push back (its last bytes arrived with it); a connection released still
      // paused, whose downstream then closed without draining, sat in the pool never reading, and
      // the next request on it hung until its timeout. A later drain must not touch the next
      // exchange on this connection either.
      if (drainDown !== null) {
        res.offDrain(drainDown)
        drainDown = null
        up.resume()
      }
      if (drainUp !== null) {
        up.removeListener('drain', drainUp)
        drainUp = null
      }
      return true
    }

    // Envoy's route timeout: the response head must arrive in time (504 UT).
    const timer = setTimeout(() => {
      if (!settle()) return
      conn.destroy()
      reject(upstreamFailure({ kind: 'timeout' }))
    }, route.timeoutMs)

    res.onAbort = () => {
      if (!settle()) return
      conn.destroy()
      if (!ctx.flags.includes(FLAGS.DownstreamConnectionTermination)) ctx.flags.push(FLAGS.DownstreamConnectionTermination)
      resolve(undefined)
    }

    const handler: ResponseHandler = {
      onHead(statusCode, statusMessage, raw, isUpgrade, keepAlive) {
        clearTimeout(timer)
        ctx.upstreamMs = performance.now() - t0
        upstreamKeepAlive = keepAlive
        const facts = responseHeadFacts(raw, null, ctx.direction === 'inbound') // the app may not send x-remora-*/x-envoy-*
        keepAliveHintMs = facts.keepAliveMs
        if (statusCode === 101 && isUpgrade) {
          if (upgrade === null) return -1 // a 101 nobody asked for: protocol error
          head101 = `HTTP/1.1 101 ${statusMessage || 'Switching Protocols'}\r\n${facts.lines}connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`
          return 0
        }
        const noBody = ctx.method === 'HEAD' || statusCode === 204 || statusCode === 304
        let framing = ''
        let closeDelimited = false
        if (noBody) {
          if (facts.contentLength !== null) framing = `content-length: ${facts.contentLength}\r\n`
        } else if (facts.contentLength !== null && !facts.chunked) {
          framing = `content-length: ${facts.contentLength}\r\n`
        } else if (req.httpVersion === '1.1') {
          downChunked = true
          framing = 'transfer-encoding: chunked\r\n'
        } else closeDelimited = true
        const extra = responseExtras(ctx, statusCode, false)
        if (!res.writeProxiedHead(statusCode, statusMessage, facts.lines, framing, extra, closeDelimited)) holdUpstream()
        return ctx.method === 'HEAD' ? 1 : 0
      },
      onBody(chunk, lease) {
        ctx.bytesSent += chunk.length
        // A chunk in a reused read buffer leaves no garbage behind: only fresh ones count.
        if (lease === null) bodyBytesForwarded(chunk.length)
        // The write keeps the bytes until it completes (corked to the next tick, or queued by the kernel).
        const done = lease?.hold()
        const ok = downChunked ? res.writev(chunkFrame(chunk), done) : res.write(chunk, done)
        if (!ok) holdUpstream()
      },
      onComplete(trailers) {
        if (!settle()) return
        res.finishProxied(downChunked ? `0\r\n${trailers !== null ? trailerLines(trailers) : ''}\r\n` : null)
        if (requestSent && upstreamKeepAlive && upgrade === null) pool.release(conn, keepAliveHintMs)
        else conn.destroy()
        resolve(undefined)
      },
      onUpgrade(socket, rest) {
        if (!settle()) return
        void tunnel(ctx, req, res, socket, head101!, rest).then(() => resolve(undefined))
      },
      onError(err, parse) {
        if (!settle()) return
        if (!res.headersSent) {
          if (!parse && mayRetry) return resolve('retry')
          const code = (err as { code?: string }).code
          reject(upstreamFailure(parse ? { kind: 'protocol' } : { kind: 'reset', reason: code }, err))
          return
        }
        // Headers already went out: the only honest signal left is a reset.
        ctx.flags.push(FLAGS.UpstreamRemoteReset)
        res.destroy()
        resolve(undefined)
      },
    }

    function holdUpstream(): void {
      if (drainDown !== null) return
      up.pause()
      drainDown = () => {
        drainDown = null
        up.resume()
      }
      res.onceDrain(drainDown)
    }

    conn.begin(handler)
    req.dispatched = true
    if (!req.hasBody) {
      up.write(head, 'latin1')
      return
    }
    // The head and the body parts already read leave together.
    up.cork()
    process.nextTick(() => up.uncork())
    up.write(head, 'latin1')
    if (!req.complete && String(req.headers.expect ?? '').toLowerCase() === '100-continue') res.writeContinue()
    req.attach({
      data(chunk) {
        ctx.bytesReceived += chunk.length
        bodyBytesForwarded(chunk.length)
        let ok: boolean
        if (req.chunked) {
          up.cork()
          for (const part of chunkFrame(chunk)) ok = up.write(part)
          up.uncork()
          ok = up.writableLength < up.writableHighWaterMark
        } else ok = up.write(chunk)
        if (!ok && drainUp === null) {
          drainUp = () => {
            drainUp = null
            req.resumeBody()
          }
          up.once('drain', drainUp)
        }
        return ok
      },
      end(trailers) {
        requestSent = true
        if (req.chunked) up.write(`0\r\n${trailers !== null ? trailerLines(trailers) : ''}\r\n`, 'latin1')
      },
    })
  })
}

/** A WebSocket tunnel after 101: bytes both ways until either side closes. */
function tunnel(ctx: RequestContext, req: RawRequest, res: RawResponse, upstream: net.Socket, head101: string, rest: Buffer): Promise<void> {
  const down = res.socket
  res.statusCode = 101
  res.headersSent = true
  res.markTunnelled()
  down.write(head101, 'latin1')
  if (rest.length > 0) {
    ctx.bytesSent += rest.length
    down.write(rest)
  }
  if (req.upgradeHead !== null) {
    ctx.bytesReceived += req.upgradeHead.length
    upstream.write(req.upgradeHead)
  }
  return pipeTunnel(ctx, down, upstream)
}
