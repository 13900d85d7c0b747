import type { ControlPlaneDeps } from '../deps.js'
import type { Store } from '../store/index.js'
import { createRootCa, issueFromCsr, issueWorkloadCert, loadRootCa, type IssuedCert, type RootCa } from './ca.js'
import { createJoinToken, generateSigningKey, importSigningKey, verifyJoinToken, type SigningKey } from './tokens.js'

const HOUR = 3_600_000

export interface AuthorityOptions {
  readonly store: Store
  readonly trustDomain: string
  /** The control plane's own SPIFFE ID (its serving certificate's URI SAN). */
  readonly identity: string
  /** Workload certificate lifetime; the serving certificate lives at least an hour. */
  readonly certTtlMs: number
  /** New handshakes must use the current serving certificate / trust bundle (server.setSecureContext). */
  readonly onServingChange: () => void
}

/**
 * The control plane's key material, shared by every replica through the store: the issuing root
 * (`ca/root.json`, first writer wins), the snapshot/join-token signing key, the trust bundle (the
 * root plus `ca/trust-bundle.pem`), and this replica's serving certificate, renewed at 70 % of its
 * lifetime and re-issued when the root rotates.
 */
export class Authority {
  readonly #o: AuthorityOptions
  readonly #deps: ControlPlaneDeps
  #ca!: RootCa
  #signing!: SigningKey
  #trustBundle = ''
  #serving: { certPem: string; keyPem: string } | null = null
  #servingTimer: NodeJS.Timeout | null = null

  private constructor(o: AuthorityOptions, deps: ControlPlaneDeps) {
    this.#o = o
    this.#deps = deps
  }

  /** Loads (or, first writer wins across replicas, creates) the root and the signing key. */
  static async load(o: AuthorityOptions, deps: ControlPlaneDeps): Promise<Authority> {
    const a = new Authority(o, deps)
    const { store, trustDomain } = o
    // First writer wins across replicas: create-if-absent, then read back whatever won.
    let root = await store.get('ca/root.json')
    if (root === null) {
      const fresh = await createRootCa({ trustDomain }, { clock: deps.clock })
      await store.create('ca/root.json', JSON.stringify({ certPem: fresh.certPem, keyPem: fresh.keyPem }))
      root = (await store.get('ca/root.json'))!
    }
    const r = JSON.parse(root) as { certPem: string; keyPem: string }
    a.#ca = await loadRootCa(r.certPem, r.keyPem, trustDomain)
    let sk = await store.get('ca/signing-key.json')
    if (sk === null) {
      const { privateJwk } = await generateSigningKey()
      await store.create('ca/signing-key.json', JSON.stringify(privateJwk))
      sk = (await store.get('ca/signing-key.json'))!
    }
    a.#signing = await importSigningKey(JSON.parse(sk))
    a.#trustBundle = await a.#readTrustBundle()
    return a
  }

  get caPem(): string {
    return this.#ca.certPem
  }
  get trustBundle(): string {
    return this.#trustBundle
  }
  get signing(): SigningKey {
    return this.#signing
  }
  /** The serving certificate chain and key (after `issueServingCert()`). */
  get serving(): { certPem: string; keyPem: string } {
    return this.#serving!
  }

  issue(csr: string, spiffeId: string): Promise<IssuedCert> {
    return issueFromCsr(this.#ca, csr, { spiffeId, ttlMs: this.#o.certTtlMs }, { clock: this.#deps.clock })
  }

  createJoinToken(spiffeId: string, ttlMs: number): ReturnType<typeof createJoinToken> {
    return createJoinToken(this.#signing, spiffeId, ttlMs, { clock: this.#deps.clock })
  }

  verifyJoinToken(token: string): ReturnType<typeof verifyJoinToken> {
    return verifyJoinToken(this.#signing, token, { clock: this.#deps.clock })
  }

  /**
   * A `ca/` key changed in the store: a new root becomes the issuing root (and the serving
   * certificate is re-issued from it), and the trust bundle is re-read. Resolves true when the
   * trust bundle changed. An unusable root is refused and logged; the current one stays.
   */
  async storeChanged(key: string, value: string | null): Promise<boolean> {
    if (key !== 'ca/trust-bundle.pem' && key !== 'ca/root.json') return false
    if (key === 'ca/root.json' && value !== null) await this.#reloadRoot(value)
    const b = await this.#readTrustBundle()
    if (b === this.#trustBundle) return false
    this.#trustBundle = b
    this.#o.onServingChange() // client certificates from an added root pass, from a removed one no longer
    return true
  }

  async #reloadRoot(value: string): Promise<void> {
    let ca: RootCa
    try {
      const r = JSON.parse(value) as { certPem?: unknown; keyPem?: unknown }
      if (typeof r.certPem !== 'string' || typeof r.keyPem !== 'string') throw new Error('expected {"certPem": …, "keyPem": …}')
      if (r.certPem === this.#ca.certPem) return
      ca = await loadRootCa(r.certPem, r.keyPem, this.#o.trustDomain)
      if (ca.certPem === this.#ca.certPem) return // the same root, formatted differently
    } catch (err) {
      this.#deps.logger.error({ event: 'ca_root_rejected', error: (err as Error).message }, 'ca/root.json is not a usable root; keeping the current one')
      return
    }
    this.#ca = ca
    await this.issueServingCert()
    this.#o.onServingChange()
    this.#deps.logger.info({ event: 'ca_root_rotated', notAfter: ca.cert.notAfter.toISOString() }, 'issuing from the new root certificate')
  }

  async #readTrustBundle(): Promise<string> {
    const extra = await this.#o.store.get('ca/trust-bundle.pem')
    return this.#ca.certPem + (extra ? `${extra.trim()}\n` : '')
  }

  /** Issues the serving certificate from the current root and schedules its renewal at 70 % of the lifetime. */
  async issueServingCert(): Promise<void> {
    const leaf = await issueWorkloadCert(this.#ca, { spiffeId: this.#o.identity, ttlMs: Math.max(this.#o.certTtlMs, HOUR) }, { clock: this.#deps.clock })
    this.#serving = { certPem: leaf.certPem + this.#ca.certPem, keyPem: leaf.keyPem }
    const life = leaf.notAfter.getTime() - this.#deps.clock.now()
    if (this.#servingTimer) clearTimeout(this.#servingTimer)
    this.#servingTimer = setTimeout(
      () =>
        void this.issueServingCert().then(
          () => this.#o.onServingChange(), // new handshakes only; open connections keep theirs
          (err: unknown) => this.#deps.logger.error({ event: 'serving_cert_renewal_failed', error: (err as Error).message }, 'cannot renew the serving certificate'),
        ),
      Math.max(1000, life * 0.7),
    )
    this.#servingTimer.unref()
  }

  close(): void {
    if (this.#servingTimer) clearTimeout(this.#servingTimer)
  }
}
