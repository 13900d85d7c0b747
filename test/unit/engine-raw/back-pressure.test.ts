import { EventEmitter } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createContext } from '../../../proxy/engines/common/index.js'
import { RawRequest, RawResponse, type DownstreamControl } from '../../../proxy/engines/raw/exchange.js'
import { RawPool, TCP_READ_BUFFER_BYTES } from '../../../proxy/engines/raw/pool.js'
import { createRawUpstreamHandler } from '../../../proxy/engines/raw/upstream.js'
import type { RouteTarget } from '../../../proxy/pipeline/index.js'

// The raw terminal pauses the upstream connection while the downstream pushes back and resumes it
// on the downstream's drain. A response can complete in the very read that made the downstream
// push back (all of it arrived at once); its connection goes back to the pool. If that downstream
// then closes without ever draining (a client that went away), the pooled connection must not stay
// paused: the next request on it would never read its response (seen in the benchmark as requests
// hanging for a whole run after the previous run's clients closed).
const BODY = Buffer.alloc(30 * 1024, 0x61)
let app: net.Server
let port = 0

beforeAll(async () => {
  // One write per response, so that the whole of it arrives in one read on the other side.
  app = net.createServer((sock) => {
    sock.on('data', () => sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n`), BODY])))
  })
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  port = (app.address() as AddressInfo).port
})

afterAll(async () => {
  await new Promise<void>((r) => app.close(() => r()))
})

/** A downstream socket stand-in: `accept` false = it pushes back and never drains (its client is gone). */
function downstream(accept: boolean): DownstreamControl & { written: number } {
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    writable: true,
    remoteAddress: '127.0.0.1',
    remotePort: 40000,
    localPort: 15006,
    cork() {},
    uncork() {},
    write(data: Buffer | string, ...rest: unknown[]) {
      ctl.written += data.length
      const cb = rest.find((a): a is () => void => typeof a === 'function')
      if (accept) cb?.()
      return accept
    },
    destroy() {
      this.destroyed = true
    },
  })
  const ctl = { socket: socket as unknown as net.Socket, written: 0, holdReading() {}, responseFinished() {}, destroy: () => socket.destroy() }
  return ctl
}

async function exchange(pool: RawPool, accept: boolean): Promise<{ status: number; flags: string[]; written: number }> {
  const down = downstream(accept)
  const req = new RawRequest('GET', '/x', ['host', 'app'], 1, 1, true, false, down.socket, down)
  const res = new RawResponse(req, down)
  const ctx = createContext('inbound', req, res, null)
  ctx.path = '/x'
  ctx.headers = { host: 'app' }
  const route: RouteTarget = { cluster: 'app', address: `127.0.0.1:${port}`, dispatcher: pool, timeoutMs: 1500, idleTimeoutMs: 60_000, identities: null, servername: null, connectTimeoutMs: 1000 }
  ctx.route = route
  await createRawUpstreamHandler()(ctx)
  return { status: res.statusCode, flags: ctx.flags, written: down.written }
}

describe('raw terminal: downstream back-pressure', () => {
  test('a response completed while its downstream pushed back leaves its connection reading: the next request on it is answered', async () => {
    const pool = new RawPool(`127.0.0.1:${port}`, (onread) => net.connect({ host: '127.0.0.1', port, ...(onread !== null ? { onread } : {}) }), 'connect', 1000, TCP_READ_BUFFER_BYTES)
    try {
      const first = await exchange(pool, false)
      expect(first.status).toBe(200)
      expect(first.written).toBeGreaterThan(BODY.length)
      expect(pool.stats.connected).toBe(1) // released for reuse, not destroyed
      const second = await exchange(pool, true)
      expect(second).toMatchObject({ status: 200, flags: [] })
      expect(pool.stats.connected).toBe(1) // the same connection carried it
    } finally {
      await pool.destroy()
    }
  })
})
