import { EventEmitter } from 'node:events'
import { X509Certificate } from 'node:crypto'
import type { JWK } from 'jose'
import type { Clock, Logger } from '../deps.js'
import { applySnapshotJws, credentialsOf, identityFrom, type Identity, type SnapshotTarget } from './apply.js'
import { createKeyAndCsr } from './csr.js'
import { XdsError, isXdsError } from './errors.js'
import { Renewal, systemTimers, type Lifetime, type Timers } from './renewal.js'
import { importPinnedKey } from './snapshot.js'
import { loadState, saveIdentity, saveSnapshot } from './state.js'
import { ControlPlaneTransport } from './transport.js'
import { TrafficReporter, type TrafficReportResult } from './traffic.js'

export type { Clock, Logger, SnapshotTarget }

export interface ControlPlaneClientOptions {
  readonly addresses: readonly string[]
  /** PEM bundle that authenticates the control plane at bootstrap (and until the first trust bundle). */
  readonly caPem: string
  readonly controlPlaneIdentity: string
  readonly trustDomain: string
  /** Read only when there is no usable persisted certificate. Never logged. */
  readonly token: () => Promise<string | null>
  readonly stateDir: string | null
  readonly registration: { readonly service: string; readonly labels: Readonly<Record<string, string>>; readonly address: string }
  readonly reconnect?: { readonly initialMs: number; readonly maxMs: number }
  /** Reconnect when nothing (not even a ping) arrived for this long. Default 45 s. */
  readonly idleTimeoutMs?: number
  /** Renew at this fraction of the certificate lifetime. Default 0.7. */
  readonly renewAt?: number
}

export interface ControlPlaneClientDeps {
  readonly clock: Clock
  readonly logger: Logger
  readonly random?: () => number
  /** Renewal timers (default the global ones). */
  readonly timers?: Timers
}

/**
 * The sidecar's side of the control plane: bootstrap with a join token (server-authenticated TLS
 * against the configured CA), one long-lived snapshot stream over mTLS with reconnect, backoff and
 * jitter across the replica list, verify → validate → swap → ACK (or NACK and keep the last good),
 * certificate renewal at 70 % of its lifetime, and persistence of the last good state.
 * The pieces: transport.ts (HTTPS, the stream), apply.ts (one snapshot), renewal.ts (when to renew).
 */
export class ControlPlaneClient {
  readonly events = new EventEmitter()
  readonly #transport: ControlPlaneTransport
  readonly #renewal: Renewal
  readonly #traffic: TrafficReporter | null
  #identity: Identity | null = null
  #signingKey: CryptoKey | null = null
  #signingJwk: JWK | null = null
  #lastGood: string | null = null
  #node: string | null = null
  #address: string | null = null
  #closed = false
  #backoff: NodeJS.Timeout | null = null
  #applying: Promise<void> = Promise.resolve()
  #loop: Promise<void> | null = null
  #wake: (() => void) | null = null

  constructor(
    private readonly target: SnapshotTarget,
    private readonly o: ControlPlaneClientOptions,
    private readonly deps: ControlPlaneClientDeps,
  ) {
    this.events.setMaxListeners(0)
    this.#transport = new ControlPlaneTransport({ caPem: o.caPem, controlPlaneIdentity: o.controlPlaneIdentity, identity: () => this.#identity })
    this.#renewal = new Renewal(
      {
        renewAt: o.renewAt ?? 0.7,
        renew: () => this.#renew(),
        current: () => this.#identity,
        onFailure: (err, expiresInMs) => deps.logger.warn({ event: 'certificate_renewal_failed', error: err.message, expiresInMs }, 'certificate renewal failed; retrying'),
      },
      { clock: deps.clock, timers: deps.timers ?? systemTimers },
    )
    const reporting = target.traffic ?? null
    this.#traffic = reporting
      ? new TrafficReporter({
          reporting,
          // On the keep-alive mTLS agent, to the replica the stream is on (any replica takes a report).
          post: async (report, timeoutMs) => (await this.#transport.request(this.#address ?? this.o.addresses[0]!, '/v1/traffic', report, { mtls: true, timeoutMs })).status,
          ready: () => this.#identity !== null && !this.#closed,
          logger: deps.logger,
          onResult: (r) => this.events.emit('traffic', r),
        })
      : null
  }

  get lastGoodVersion(): string | null {
    return this.#lastGood
  }
  get node(): string | null {
    return this.#node
  }
  get connectedTo(): string | null {
    return this.#address
  }
  get certificate(): { notBefore: Date; notAfter: Date } | null {
    return this.#identity ? { notBefore: new Date(this.#identity.notBefore), notAfter: new Date(this.#identity.notAfter) } : null
  }

  /** Starts in the background: the sidecar keeps failing closed until the first snapshot applies. */
  start(): void {
    this.#traffic?.start()
    this.#loop = this.#run().catch((err: unknown) => {
      if (!this.#closed) this.deps.logger.error({ event: 'control_plane_client_stopped', error: (err as Error).message }, 'control-plane client stopped')
    })
  }

  /** Resolves with the next event of that name (tests and the demo wait on events, not sleeps). */
  next<T = unknown>(event: 'applied' | 'nacked' | 'renewed' | 'connected' | 'bootstrapped' | 'disconnected' | 'traffic', timeoutMs = 15_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.events.off(event, on)
        reject(new Error(`timed out waiting for ${event}`))
      }, timeoutMs)
      const on = (v: T): void => {
        clearTimeout(t)
        resolve(v)
      }
      this.events.once(event, on)
    })
  }

  async #run(): Promise<void> {
    await this.#restore()
    let attempt = 0
    let i = 0
    while (!this.#closed) {
      const address = this.o.addresses[i % this.o.addresses.length]!
      try {
        if (!this.#identity || this.#identity.notAfter <= this.deps.clock.now()) await this.#bootstrap(address)
        const body = { ...this.o.registration, version: this.#lastGood }
        const gotFrames = await this.#transport.openStream(address, body, this.o.idleTimeoutMs ?? 45_000, {
          onOpen: () => (this.#address = address),
          onFrame: (line) => this.#onFrame(line, address),
        })
        if (gotFrames) attempt = 0
      } catch (err) {
        if (this.#closed) break
        const e = err as Error & { code?: string }
        this.deps.logger.warn({ event: 'control_plane_unreachable', address, error: e.code ?? e.message }, 'control plane unreachable; trying the next address')
      }
      if (this.#closed) break
      this.#address = null
      this.events.emit('disconnected', address)
      i++
      // Full jitter (AWS architecture blog): spreads a fleet's reconnects after a replica dies.
      const { initialMs, maxMs } = this.o.reconnect ?? { initialMs: 200, maxMs: 5000 }
      const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 16))
      attempt++
      await this.#sleep(Math.round((this.deps.random ?? Math.random)() * cap))
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.#backoff) clearTimeout(this.#backoff)
        this.#backoff = null
        this.#wake = null
        resolve()
      }
      this.#backoff = setTimeout(done, ms)
      this.#wake = done
    })
  }

  /** A restarted sidecar serves on its persisted certificate and last good snapshot until the control plane answers. */
  async #restore(): Promise<void> {
    if (!this.o.stateDir) return
    const st = await loadState(this.o.stateDir)
    if (!st) return
    if (st.controlPlaneIdentity !== this.o.controlPlaneIdentity) return
    const ident = identityFrom(st.certPem, st.keyPem, st.trustBundle, null)
    if (!ident || ident.notAfter <= this.deps.clock.now()) {
      this.deps.logger.warn({ event: 'persisted_certificate_unusable', stateDir: this.o.stateDir }, 'persisted certificate expired or unreadable; bootstrapping again')
      return
    }
    this.#identity = ident
    this.#signingJwk = st.signingKey
    this.#signingKey = await importPinnedKey(st.signingKey)
    this.#renewal.schedule(ident)
    if (st.snapshotJws) {
      try {
        await this.#apply(st.snapshotJws, { persisted: true })
        this.deps.logger.info({ event: 'persisted_snapshot_applied', version: this.#lastGood }, 'serving on the persisted snapshot until the control plane answers')
      } catch (err) {
        this.deps.logger.warn({ event: 'persisted_snapshot_refused', error: (err as Error).message }, 'persisted snapshot refused')
      }
    }
  }

  async #persistIdentity(ident: Identity): Promise<void> {
    if (!this.o.stateDir || !this.#signingJwk) return
    await saveIdentity(this.o.stateDir, { certPem: ident.certPem, keyPem: ident.keyPem, trustBundle: ident.trustBundle, signingKey: this.#signingJwk, controlPlaneIdentity: this.o.controlPlaneIdentity })
  }

  async #bootstrap(address: string): Promise<void> {
    const token = await this.o.token()
    if (!token) throw new XdsError('REMORA_ERR_XDS_NO_TOKEN')
    const { keyPem, csrPem } = await createKeyAndCsr(this.target.selfId)
    const r = await this.#transport.request(address, '/v1/bootstrap', { token, csr: csrPem }, { mtls: false })
    if (r.status !== 200) {
      const err = (r.json as { error?: { code?: string; message?: string } } | null)?.error
      throw new XdsError('REMORA_ERR_XDS_BOOTSTRAP_REFUSED', [`${err?.code ?? r.status}: ${err?.message ?? 'refused'}`])
    }
    const b = r.json as { certPem: string; trustBundle: string; signingKey: JWK; controlPlaneIdentity: string }
    const ident = identityFrom(b.certPem, keyPem, b.trustBundle, this.deps.clock.now())
    if (!ident) throw new XdsError('REMORA_ERR_XDS_CREDENTIALS', ['the issued certificate cannot be read'])
    credentialsOf(ident, this.o.trustDomain, this.deps.clock.now())
    this.#identity = ident
    this.#signingJwk = b.signingKey
    this.#signingKey = await importPinnedKey(b.signingKey)
    this.#transport.resetAgent()
    await this.#persistIdentity(ident)
    this.#renewal.schedule(ident)
    this.deps.logger.info({ event: 'bootstrapped', identity: this.target.selfId, address, notAfter: new Date(ident.notAfter).toISOString(), kid: b.signingKey.kid }, 'workload certificate received')
    this.events.emit('bootstrapped', { notAfter: new Date(ident.notAfter) })
  }

  #onFrame(line: string, address: string): void {
    let f: { type?: string; node?: string; version?: string; jws?: string }
    try {
      f = JSON.parse(line) as typeof f
    } catch {
      return
    }
    if (f.type === 'hello' && typeof f.node === 'string') {
      this.#node = f.node
      this.deps.logger.info({ event: 'control_plane_connected', address, node: f.node }, 'snapshot stream open')
      this.events.emit('connected', address)
    } else if (f.type === 'snapshot' && typeof f.jws === 'string') {
      const jws = f.jws
      const announced = typeof f.version === 'string' ? f.version : '?'
      // One snapshot at a time, in arrival order.
      this.#applying = this.#applying.then(() => this.#handleSnapshot(jws, announced, address))
    }
  }

  async #handleSnapshot(jws: string, announced: string, address: string): Promise<void> {
    try {
      await this.#apply(jws, { persisted: false })
      if (this.o.stateDir) await saveSnapshot(this.o.stateDir, jws)
      await this.#post(address, '/v1/ack', { node: this.#node, version: this.#lastGood })
    } catch (err) {
      const lines = isXdsError(err) ? err.lines() : [`${(err as Error).message} (REMORA_ERR_XDS_SNAPSHOT_INVALID)`]
      this.target.noteConfigRejected?.()
      this.deps.logger.error({ event: 'config_rejected', version: announced, kept: this.#lastGood, errors: lines }, 'snapshot rejected (NACK); keeping the last good snapshot')
      this.events.emit('nacked', { version: announced, errors: lines })
      await this.#post(address, '/v1/nack', { node: this.#node, version: announced, errors: lines })
    }
  }

  async #post(address: string, path: string, body: unknown): Promise<void> {
    try {
      const r = await this.#transport.request(address, path, body, { mtls: true })
      if (r.status !== 200) this.deps.logger.warn({ event: 'control_plane_post_refused', path, status: r.status }, 'ACK/NACK refused')
    } catch (err) {
      this.deps.logger.warn({ event: 'control_plane_post_failed', path, error: (err as Error).message }, 'ACK/NACK not delivered')
    }
  }

  /** One snapshot through apply.ts; the identity follows the snapshot's trust bundle. Throws XdsError, nothing changed. */
  async #apply(jws: string, o: { persisted: boolean }): Promise<void> {
    if (!this.#signingKey || !this.#identity) throw new XdsError('REMORA_ERR_XDS_SIGNATURE', ['no pinned control-plane key'])
    const r = await applySnapshotJws(jws, { signingKey: this.#signingKey, identity: this.#identity, target: this.target, trustDomain: this.o.trustDomain, now: this.deps.clock.now() })
    this.#identity = r.identity
    this.#lastGood = r.version
    this.events.emit('applied', { version: r.version, persisted: o.persisted })
  }

  /** One renewal attempt (Renewal decides when, and retries): a new key and CSR, the certificate swapped in for new handshakes. */
  async #renew(): Promise<Lifetime> {
    const cur = this.#identity!
    const address = this.#address ?? this.o.addresses[0]!
    const { keyPem, csrPem } = await createKeyAndCsr(this.target.selfId)
    const r = await this.#transport.request(address, '/v1/renew', { csr: csrPem }, { mtls: true })
    if (r.status !== 200) throw new Error(`renewal refused: HTTP ${r.status} ${JSON.stringify((r.json as { error?: unknown } | null)?.error ?? null)}`)
    const b = r.json as { certPem: string; trustBundle: string }
    const ident = identityFrom(b.certPem, keyPem, cur.trustBundle, this.deps.clock.now())
    if (!ident) throw new Error('renewed certificate unreadable')
    const creds = credentialsOf(ident, this.o.trustDomain, this.deps.clock.now())
    this.#identity = ident
    // New handshakes (inbound and upstream) use the new certificate; open connections keep going.
    if (this.target.creds.hasCredentials) this.target.creds.update(creds)
    this.#transport.resetAgent()
    await this.#persistIdentity(ident)
    this.deps.logger.info({ event: 'certificate_renewed', identity: this.target.selfId, serial: new X509Certificate(ident.certPem).serialNumber, notAfter: new Date(ident.notAfter).toISOString() }, 'workload certificate renewed')
    this.events.emit('renewed', { notAfter: new Date(ident.notAfter) })
    return ident
  }

  /** Reports the traffic record now (tests, the demo); null when there is nothing to report or no record. */
  reportTraffic(): Promise<TrafficReportResult | null> {
    return this.#traffic?.flush() ?? Promise.resolve(null)
  }

  async close(): Promise<void> {
    // The last report first, while the certificate and the agent are still there (best effort, ~1 s at most).
    await this.#traffic?.close()
    this.#closed = true
    this.#renewal.close()
    this.#wake?.()
    this.#transport.close()
    await this.#loop
    await this.#applying.catch(() => {})
  }
}
