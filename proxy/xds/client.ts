import { EventEmitter } from 'node:events'
import { X509Certificate } from 'node:crypto'
import https from 'node:https'
import type { JWK } from 'jose'
import { secureNamingCheck, buildCredentials, CredentialError, type Credentials, type CredentialStore } from '../tls/index.js'
import type { ClusterConfig } from '../config/schema.js'
import type { PolicyDocument } from '../policy/index.js'
import { createKeyAndCsr } from './csr.js'
import { XdsError } from './errors.js'
import { checkSnapshot, importPinnedKey, verifySnapshot } from './snapshot.js'
import { loadState, saveIdentity, saveSnapshot } from './state.js'

export interface Clock {
  now(): number
}

export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** What the client drives: the Sidecar (or, in the benchmark, a lightweight stand-in). */
export interface SnapshotTarget {
  readonly selfId: string
  readonly creds: CredentialStore
  applySnapshot(s: { version: string; policies: readonly PolicyDocument[]; clusters: readonly ClusterConfig[] }, credentials?: Credentials): string
  noteConfigRejected?(): void
}

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
}

interface Identity {
  certPem: string
  keyPem: string
  trustBundle: string
  notAfter: number
  notBefore: number
  /**
   * Where the lifetime counts from for renewal: when the certificate arrived, or its notBefore if
   * later. The CA backdates notBefore (clock skew), which for a short lifetime would put the 70 %
   * mark in the past and renew in a loop.
   */
  issuedAt: number
}

/**
 * The sidecar's side of the control plane: bootstrap with a join token (server-authenticated TLS
 * against the configured CA), one long-lived snapshot stream over mTLS with reconnect, backoff and
 * jitter across the replica list, verify → validate → swap → ACK (or NACK and keep the last good),
 * certificate renewal at 70 % of its lifetime, and persistence of the last good state.
 */
export class ControlPlaneClient {
  readonly events = new EventEmitter()
  #identity: Identity | null = null
  #signingKey: CryptoKey | null = null
  #signingJwk: JWK | null = null
  #lastGood: string | null = null
  #node: string | null = null
  #address: string | null = null
  #agent: https.Agent | null = null
  #stream: { destroy(): void } | null = null
  #closed = false
  #timers = new Set<NodeJS.Timeout>()
  #applying: Promise<void> = Promise.resolve()
  #renewing = false
  #loop: Promise<void> | null = null
  #wake: (() => void) | null = null

  constructor(
    private readonly target: SnapshotTarget,
    private readonly o: ControlPlaneClientOptions,
    private readonly deps: ControlPlaneClientDeps,
  ) {
    this.events.setMaxListeners(0)
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
    this.#loop = this.#run().catch((err: unknown) => {
      if (!this.#closed) this.deps.logger.error({ event: 'control_plane_client_stopped', error: (err as Error).message }, 'control-plane client stopped')
    })
  }

  /** Resolves with the next event of that name (tests and the demo wait on events, not sleeps). */
  next<T = unknown>(event: 'applied' | 'nacked' | 'renewed' | 'connected' | 'bootstrapped' | 'disconnected', timeoutMs = 15_000): Promise<T> {
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
        const gotFrames = await this.#openStream(address)
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
      const t = setTimeout(() => {
        this.#timers.delete(t)
        this.#wake = null
        resolve()
      }, ms)
      this.#timers.add(t)
      this.#wake = () => {
        clearTimeout(t)
        this.#timers.delete(t)
        resolve()
      }
    })
  }

  /** A restarted sidecar serves on its persisted certificate and last good snapshot until the control plane answers. */
  async #restore(): Promise<void> {
    if (!this.o.stateDir) return
    const st = await loadState(this.o.stateDir)
    if (!st) return
    if (st.controlPlaneIdentity !== this.o.controlPlaneIdentity) return
    const ident = this.#identityFrom(st.certPem, st.keyPem, st.trustBundle, null)
    if (!ident || ident.notAfter <= this.deps.clock.now()) {
      this.deps.logger.warn({ event: 'persisted_certificate_unusable', stateDir: this.o.stateDir }, 'persisted certificate expired or unreadable; bootstrapping again')
      return
    }
    this.#identity = ident
    this.#signingJwk = st.signingKey
    this.#signingKey = await importPinnedKey(st.signingKey)
    this.#scheduleRenewal()
    if (st.snapshotJws) {
      try {
        await this.#apply(st.snapshotJws, { persisted: true })
        this.deps.logger.info({ event: 'persisted_snapshot_applied', version: this.#lastGood }, 'serving on the persisted snapshot until the control plane answers')
      } catch (err) {
        this.deps.logger.warn({ event: 'persisted_snapshot_refused', error: (err as Error).message }, 'persisted snapshot refused')
      }
    }
  }

  /** `receivedAt` null: a persisted certificate, whose arrival time is unknown (its notBefore is used). */
  #identityFrom(certPem: string, keyPem: string, trustBundle: string, receivedAt: number | null): Identity | null {
    try {
      const x = new X509Certificate(certPem)
      const notBefore = Date.parse(x.validFrom)
      return { certPem, keyPem, trustBundle, notAfter: Date.parse(x.validTo), notBefore, issuedAt: Math.max(notBefore, receivedAt ?? notBefore) }
    } catch {
      return null
    }
  }

  #tlsOptions(withClientCert: boolean): https.AgentOptions & https.RequestOptions {
    const id = this.#identity
    return {
      ca: id ? `${this.o.caPem}\n${id.trustBundle}` : this.o.caPem,
      ...(withClientCert && id ? { cert: id.certPem, key: id.keyPem } : {}),
      minVersion: 'TLSv1.3',
      checkServerIdentity: secureNamingCheck([this.o.controlPlaneIdentity]),
    } as https.AgentOptions & https.RequestOptions
  }

  #agentFor(): https.Agent {
    if (!this.#agent) this.#agent = new https.Agent({ keepAlive: true, maxSockets: 2, ...this.#tlsOptions(true) })
    return this.#agent
  }

  #request(address: string, path: string, body: unknown, o: { mtls: boolean; timeoutMs?: number }): Promise<{ status: number; json: unknown }> {
    const [host, port] = splitAddress(address)
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify(body)
      const req = https.request(
        {
          host,
          port,
          path,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          ...(o.mtls ? { agent: this.#agentFor() } : { agent: false, ...this.#tlsOptions(false) }),
          timeout: o.timeoutMs ?? 10_000,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            let json: unknown = null
            try {
              json = JSON.parse(Buffer.concat(chunks).toString())
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode ?? 0, json })
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timeout'), { code: 'ETIMEDOUT' })))
      req.on('error', reject)
      req.end(payload)
    })
  }

  async #bootstrap(address: string): Promise<void> {
    const token = await this.o.token()
    if (!token) throw new XdsError('REMORA_ERR_XDS_NO_TOKEN')
    const { keyPem, csrPem } = await createKeyAndCsr(this.target.selfId)
    const r = await this.#request(address, '/v1/bootstrap', { token, csr: csrPem }, { mtls: false })
    if (r.status !== 200) {
      const err = (r.json as { error?: { code?: string; message?: string } } | null)?.error
      throw new XdsError('REMORA_ERR_XDS_BOOTSTRAP_REFUSED', [`${err?.code ?? r.status}: ${err?.message ?? 'refused'}`])
    }
    const b = r.json as { certPem: string; trustBundle: string; signingKey: JWK; controlPlaneIdentity: string }
    const ident = this.#identityFrom(b.certPem, keyPem, b.trustBundle, this.deps.clock.now())
    if (!ident) throw new XdsError('REMORA_ERR_XDS_CREDENTIALS', ['the issued certificate cannot be read'])
    this.#checkCredentials(ident)
    this.#identity = ident
    this.#signingJwk = b.signingKey
    this.#signingKey = await importPinnedKey(b.signingKey)
    this.#resetAgent()
    if (this.o.stateDir) await saveIdentity(this.o.stateDir, { certPem: ident.certPem, keyPem: ident.keyPem, trustBundle: ident.trustBundle, signingKey: b.signingKey, controlPlaneIdentity: this.o.controlPlaneIdentity })
    this.#scheduleRenewal()
    this.deps.logger.info({ event: 'bootstrapped', identity: this.target.selfId, address, notAfter: new Date(ident.notAfter).toISOString(), kid: b.signingKey.kid }, 'workload certificate received')
    this.events.emit('bootstrapped', { notAfter: new Date(ident.notAfter) })
  }

  #checkCredentials(id: Identity): Credentials {
    try {
      return buildCredentials({ certPem: id.certPem, keyPem: id.keyPem, caPem: id.trustBundle }, this.o.trustDomain, this.deps.clock.now())
    } catch (err) {
      throw new XdsError('REMORA_ERR_XDS_CREDENTIALS', [err instanceof CredentialError ? `${err.field}: ${err.message}` : (err as Error).message])
    }
  }

  #resetAgent(): void {
    this.#agent?.destroy()
    this.#agent = null
  }

  /** Resolves when the stream ends; true when at least one frame arrived (the backoff resets). */
  #openStream(address: string): Promise<boolean> {
    const [host, port] = splitAddress(address)
    const body = JSON.stringify({ ...this.o.registration, version: this.#lastGood })
    return new Promise((resolve, reject) => {
      let frames = false
      let idle: NodeJS.Timeout | null = null
      const idleMs = this.o.idleTimeoutMs ?? 45_000
      const req = https.request(
        {
          host,
          port,
          path: '/v1/stream',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          ...this.#tlsOptions(true),
        },
        (res) => {
          if (res.statusCode !== 200) {
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () => reject(Object.assign(new Error(`stream refused: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 300)}`), { code: `HTTP_${res.statusCode}` })))
            return
          }
          const touch = (): void => {
            if (idle) clearTimeout(idle)
            idle = setTimeout(() => req.destroy(Object.assign(new Error('stream idle'), { code: 'ESTREAMIDLE' })), idleMs)
          }
          touch()
          this.#address = address
          let buf = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            touch()
            buf += chunk
            let nl: number
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl)
              buf = buf.slice(nl + 1)
              if (line.trim()) {
                frames = true
                this.#onFrame(line, address)
              }
            }
          })
          const done = (): void => {
            if (idle) clearTimeout(idle)
            this.#stream = null
            resolve(frames)
          }
          res.on('end', done)
          res.on('close', done)
          res.on('error', done)
        },
      )
      this.#stream = req
      req.on('error', (err) => {
        if (idle) clearTimeout(idle)
        this.#stream = null
        if (frames) resolve(true)
        else reject(err)
      })
      req.end(body)
    })
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
      const lines = err instanceof XdsError ? err.lines() : [`${(err as Error).message} (REMORA_ERR_XDS_SNAPSHOT_INVALID)`]
      this.target.noteConfigRejected?.()
      this.deps.logger.error({ event: 'config_rejected', version: announced, kept: this.#lastGood, errors: lines }, 'snapshot rejected (NACK); keeping the last good snapshot')
      this.events.emit('nacked', { version: announced, errors: lines })
      await this.#post(address, '/v1/nack', { node: this.#node, version: announced, errors: lines })
    }
  }

  async #post(address: string, path: string, body: unknown): Promise<void> {
    try {
      const r = await this.#request(address, path, body, { mtls: true })
      if (r.status !== 200) this.deps.logger.warn({ event: 'control_plane_post_refused', path, status: r.status }, 'ACK/NACK refused')
    } catch (err) {
      this.deps.logger.warn({ event: 'control_plane_post_failed', path, error: (err as Error).message }, 'ACK/NACK not delivered')
    }
  }

  /** verify → validate → build → atomic swap. Throws XdsError (nothing changed) on any failure. */
  async #apply(jws: string, o: { persisted: boolean }): Promise<void> {
    if (!this.#signingKey || !this.#identity) throw new XdsError('REMORA_ERR_XDS_SIGNATURE', ['no pinned control-plane key'])
    const payload = await verifySnapshot(jws, this.#signingKey)
    const snap = checkSnapshot(payload, { trustDomain: this.o.trustDomain })
    // New credentials when the sidecar has none yet, or when the trust bundle changed (root rotation).
    let creds: Credentials | undefined
    const id = this.#identity
    if (!this.target.creds.hasCredentials || id.trustBundle !== snap.trustBundle || this.target.creds.current.certPem !== id.certPem) {
      const next = { ...id, trustBundle: snap.trustBundle }
      creds = this.#checkCredentials(next)
      this.#identity = next
    }
    try {
      this.target.applySnapshot({ version: snap.version, policies: snap.policies, clusters: snap.clusters }, creds)
    } catch (err) {
      this.#identity = id
      throw new XdsError('REMORA_ERR_XDS_SNAPSHOT_INVALID', [`cannot build the snapshot: ${(err as Error).message}`])
    }
    this.#lastGood = snap.version
    this.events.emit('applied', { version: snap.version, persisted: o.persisted })
  }

  #scheduleRenewal(): void {
    const id = this.#identity
    if (!id || this.#closed) return
    const at = id.issuedAt + (id.notAfter - id.issuedAt) * (this.o.renewAt ?? 0.7)
    const delay = Math.max(0, at - this.deps.clock.now())
    const t = setTimeout(() => {
      this.#timers.delete(t)
      void this.#renew()
    }, delay)
    this.#timers.add(t)
  }

  async #renew(): Promise<void> {
    if (this.#closed || this.#renewing || !this.#identity) return
    this.#renewing = true
    const address = this.#address ?? this.o.addresses[0]!
    try {
      const { keyPem, csrPem } = await createKeyAndCsr(this.target.selfId)
      const r = await this.#request(address, '/v1/renew', { csr: csrPem }, { mtls: true })
      if (r.status !== 200) throw new Error(`renewal refused: HTTP ${r.status} ${JSON.stringify((r.json as { error?: unknown } | null)?.error ?? null)}`)
      const b = r.json as { certPem: string; trustBundle: string }
      const ident = this.#identityFrom(b.certPem, keyPem, this.#identity.trustBundle, this.deps.clock.now())
      if (!ident) throw new Error('renewed certificate unreadable')
      const creds = this.#checkCredentials(ident)
      this.#identity = ident
      // New handshakes (inbound and upstream) use the new certificate; open connections keep going.
      if (this.target.creds.hasCredentials) this.target.creds.update(creds)
      this.#resetAgent()
      if (this.o.stateDir && this.#signingJwk) await saveIdentity(this.o.stateDir, { certPem: ident.certPem, keyPem: ident.keyPem, trustBundle: ident.trustBundle, signingKey: this.#signingJwk, controlPlaneIdentity: this.o.controlPlaneIdentity })
      this.deps.logger.info({ event: 'certificate_renewed', identity: this.target.selfId, serial: new X509Certificate(ident.certPem).serialNumber, notAfter: new Date(ident.notAfter).toISOString() }, 'workload certificate renewed')
      this.events.emit('renewed', { notAfter: new Date(ident.notAfter) })
      this.#renewing = false
      this.#scheduleRenewal()
    } catch (err) {
      this.#renewing = false
      const left = this.#identity.notAfter - this.deps.clock.now()
      this.deps.logger.warn({ event: 'certificate_renewal_failed', error: (err as Error).message, expiresInMs: left }, 'certificate renewal failed; retrying')
      const t = setTimeout(
        () => {
          this.#timers.delete(t)
          void this.#renew()
        },
        Math.max(200, Math.min(10_000, left / 10)),
      )
      this.#timers.add(t)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    this.#wake?.()
    this.#stream?.destroy()
    this.#resetAgent()
    await this.#loop
    await this.#applying.catch(() => {})
  }
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':')
  const host = address.slice(0, i)
  return [host.startsWith('[') ? host.slice(1, -1) : host, Number(address.slice(i + 1))]
}
