import net from 'node:net'
import { Pool, type buildConnector } from 'undici'
import { createMtlsDialer, type CredentialStore } from '../../tls/index.js'
import { splitAddress } from '../common/index.js'

export interface MtlsPoolKey {
  readonly address: string // host:port
  readonly identities: readonly string[]
  readonly connectTimeoutMs: number
}

/** Errors raised while connecting are tagged, so the upstream stage can tell UF from UC. */
export const kConnectPhase = Symbol('remora.connectPhase')

function tagConnectError(err: Error): Error {
  ;(err as Error & { [kConnectPhase]?: boolean })[kConnectPhase] = true
  return err
}

export function isConnectPhaseError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { [kConnectPhase]?: boolean })[kConnectPhase] === true
}


const POOL_OPTIONS = {
  keepAliveTimeout: 30_000,
  keepAliveMaxTimeout: 300_000,
  pipelining: 1,
  // Headers/body timeouts are per request (route/cluster timeouts), set on each dispatch.
  headersTimeout: 0,
  bodyTimeout: 0,
  maxHeaderSize: 61_440,
} as const

/**
 * Hands `socket` to undici once `readyEvent` fires, or fails the connect (tagged as connect phase)
 * on error or after `timeoutMs`.
 */
function settleConnect(socket: net.Socket, readyEvent: 'connect' | 'secureConnect', timeoutMs: number, callback: Parameters<buildConnector.connector>[1]): net.Socket {
  let done = false
  const finish = (err: Error | null): void => {
    if (done) return
    done = true
    clearTimeout(timer)
    socket.removeListener('error', finish)
    if (err) {
      socket.destroy()
      callback(tagConnectError(err), null)
    } else callback(null, socket)
  }
  const timer = setTimeout(() => finish(Object.assign(new Error(`connect timeout after ${timeoutMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' })), timeoutMs)
  socket.once(readyEvent, () => finish(null))
  socket.once('error', finish)
  return socket
}

/**
 * mTLS connector: reads the sidecar's current credentials at every connect (rotation without
 * rebuilding pools) and checks the server's SPIFFE ID against the cluster's identities.
 */
function mtlsConnector(key: MtlsPoolKey, creds: CredentialStore, servername: string): buildConnector.connector {
  const { host, port } = splitAddress(key.address)
  const dial = createMtlsDialer({ host, port, identities: key.identities, servername }, creds)
  return (_opts, callback) => settleConnect(dial(), 'secureConnect', key.connectTimeoutMs, callback)
}

function plainConnector(address: string, connectTimeoutMs: number): buildConnector.connector {
  const { host, port } = splitAddress(address)
  return (_opts, callback) => settleConnect(net.connect({ host, port, noDelay: true }), 'connect', connectTimeoutMs, callback)
}

/**
 * Upstream connection pools, keyed by endpoint AND the identities expected there, so a reused
 * connection never skips secure naming. Pools survive config swaps when their key is unchanged.
 */
export class PoolRegistry {
  readonly #pools = new Map<string, Pool>()
  constructor(private readonly creds: CredentialStore) {}

  mtls(key: MtlsPoolKey, servername: string): Pool {
    const id = `mtls|${key.address}|${[...key.identities].sort().join(',')}|${key.connectTimeoutMs}|${servername}`
    let pool = this.#pools.get(id)
    if (!pool) {
      pool = new Pool(`https://${key.address}`, { ...POOL_OPTIONS, connect: mtlsConnector(key, this.creds, servername) })
      this.#pools.set(id, pool)
    }
    return pool
  }

  plain(address: string, connectTimeoutMs: number): Pool {
    const id = `plain|${address}|${connectTimeoutMs}`
    let pool = this.#pools.get(id)
    if (!pool) {
      pool = new Pool(`http://${address}`, { ...POOL_OPTIONS, connect: plainConnector(address, connectTimeoutMs) })
      this.#pools.set(id, pool)
    }
    return pool
  }

  /** Closes pools not in `keep` (after a config swap); in-flight requests on them finish first. */
  retain(keep: ReadonlySet<Pool>): void {
    for (const [id, pool] of this.#pools) {
      if (!keep.has(pool)) {
        this.#pools.delete(id)
        pool.close().catch(() => {})
      }
    }
  }

  stats(): { key: string; connected: number; pending: number; running: number }[] {
    return [...this.#pools].map(([key, p]) => ({ key, connected: p.stats.connected, pending: p.stats.pending, running: p.stats.running }))
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(all.map((p) => p.destroy().catch(() => {})))
  }
}
