import type { Duplex } from 'node:stream'
import type { RequestContext } from '../../pipeline/index.js'
import { bodyBytesForwarded } from './read-buffers.js'

/** A tunnel idle in both directions for this long is closed (Envoy's stream idle timeout default is 5 min). */
export const TUNNEL_IDLE_MS = 300_000

/**
 * Bytes both ways between the downstream and the upstream socket after a 101 (WebSocket), with
 * back-pressure (pipe), the bytes counted on the context, and both sides closed when either
 * closes, errs or idles. Resolves when both are gone.
 */
export function tunnel(ctx: RequestContext, down: Duplex, up: Duplex & { setTimeout?(ms: number, cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => {
    down.on('data', (c: Buffer) => {
      ctx.bytesReceived += c.length
      bodyBytesForwarded(c.length)
    })
    up.on('data', (c: Buffer) => {
      ctx.bytesSent += c.length
      bodyBytesForwarded(c.length)
    })
    up.setTimeout?.(TUNNEL_IDLE_MS, () => up.destroy())
    down.on('error', () => down.destroy())
    up.on('error', () => up.destroy())
    let closed = false
    const done = (): void => {
      if (closed) return
      closed = true
      up.destroy()
      down.destroy()
      resolve()
    }
    down.once('close', done)
    up.once('close', done)
    down.pipe(up)
    up.pipe(down)
    up.resume()
  })
}
