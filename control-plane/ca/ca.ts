import { randomBytes, createPrivateKey } from 'node:crypto'
import { parseSpiffeId } from '../../proxy/identity/index.js'
import { CaError } from './errors.js'
import { x509 } from './x509.js'

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

export interface RootCa {
  trustDomain: string
  certPem: string
  /** PKCS#8 PEM. Never log it. */
  keyPem: string
  cert: x509.X509Certificate
  keys: CryptoKeyPair
}

export interface IssuedCert {
  certPem: string
  notBefore: Date
  notAfter: Date
  /** Hex serial number. */
  serial: string
}

const EC_KEY: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' }
const SIGNING: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' }
const OID_SAN = '2.5.29.17'
const MINUTE = 60_000
const HOUR = 60 * MINUTE
export const DEFAULT_ROOT_VALIDITY_MS = 10 * 365 * 24 * HOUR
export const DEFAULT_LEAF_TTL_MS = 24 * HOUR
/** Clock-skew allowance: peers whose clocks run a little behind still accept a fresh cert. */
export const BACKDATE_MS = MINUTE

const subtle = globalThis.crypto.subtle

/** 16 random bytes, high bit clear (positive) and first byte non-zero (no DER padding, fixed length). */
function randomSerial(): string {
  const b = randomBytes(16)
  b[0] = (b[0]! & 0x7f) | 0x01
  return b.toString('hex')
}

function toPem(der: ArrayBuffer, label: string): string {
  return `${x509.PemConverter.encode(der, label)}\n`
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

export async function generateKeyPair(): Promise<{ keys: CryptoKeyPair; keyPem: string }> {
  const keys = await subtle.generateKey(EC_KEY, true, ['sign', 'verify'])
  return { keys, keyPem: await exportKeyPem(keys.privateKey) }
}

function workloadSubject(trustDomain: string): string {
  return `O=remora, OU=${trustDomain.replace(/[,+"\\<>;=]/g, '_')}`
}

export async function createRootCa(
  opts: { trustDomain: string; commonName?: string; validityMs?: number; notBefore?: Date },
  deps: { clock: Clock },
): Promise<RootCa> {
  const td = parseSpiffeId(`spiffe://${opts.trustDomain}`)
  if (!td || td.path !== '') throw new CaError('REMORA_ERR_CA_TRUST_DOMAIN', `invalid trust domain "${opts.trustDomain}"`)
  const now = deps.clock.now()
  const notBefore = opts.notBefore ?? new Date(now - BACKDATE_MS)
  const notAfter = new Date(notBefore.getTime() + (opts.validityMs ?? DEFAULT_ROOT_VALIDITY_MS))
  const { keys, keyPem } = await generateKeyPair()
  const cn = (opts.commonName ?? `remora root CA ${td.trustDomain}`).replace(/[,+"\\<>;=]/g, '_')
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${cn}, O=remora`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // SPIFFE allows a signing cert to carry the bare trust-domain ID; loadRootCa reads it back.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: td.uri }]),
    ],
  })
  return { trustDomain: td.trustDomain, certPem: `${cert.toString('pem')}\n`, keyPem, cert, keys }
}

/**
 * Loads a root from PEM (any private-key PEM Node reads: PKCS#8 or SEC1). The trust domain comes
 * from the argument or else from the root's `spiffe://<td>` URI SAN. Checks that key and cert match.
 */
export async function loadRootCa(certPem: string, keyPem: string, trustDomain?: string): Promise<RootCa> {
  let cert: x509.X509Certificate
  let keys: CryptoKeyPair
  let pkcs8Pem: string
  try {
    cert = new x509.X509Certificate(certPem)
    const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' })
    const privateKey = await subtle.importKey('pkcs8', der, EC_KEY, true, ['sign'])
    const publicKey = await cert.publicKey.export(EC_KEY, ['verify'])
    keys = { privateKey, publicKey }
    pkcs8Pem = await exportKeyPem(privateKey)
  } catch (err) {
    throw new CaError('REMORA_ERR_CA_ROOT_INVALID', 'cannot read the certificate or the ECDSA P-256 key', { cause: err })
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension)
  if (!bc?.ca) throw new CaError('REMORA_ERR_CA_ROOT_INVALID', 'the certificate is not a CA (basicConstraints CA:false)')
  const probe = new Uint8Array(32)
  const sig = await subtle.sign(SIGNING, keys.privateKey, probe)
  if (!(await subtle.verify(SIGNING, keys.publicKey, sig, probe))) {
    throw new CaError('REMORA_ERR_CA_ROOT_INVALID', 'the private key does not belong to the certificate')
  }
  let td = trustDomain
  if (td === undefined) {
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
    const uri = san?.names.items.find((n) => n.type === 'url')?.value
    const parsed = uri ? parseSpiffeId(uri) : null
    if (!parsed || parsed.path !== '') throw new CaError('REMORA_ERR_CA_ROOT_INVALID', 'no trust domain given and the root has no spiffe://<trust-domain> URI SAN')
    td = parsed.trustDomain
  }
  const tdId = parseSpiffeId(`spiffe://${td}`)
  if (!tdId || tdId.path !== '') throw new CaError('REMORA_ERR_CA_TRUST_DOMAIN', `invalid trust domain "${td}"`)
  return { trustDomain: tdId.trustDomain, certPem: `${cert.toString('pem')}\n`, keyPem: pkcs8Pem, cert, keys }
}

/** A CSR (PEM) whose only SAN is the URI `spiffeId`. The private key stays with the caller. */
export async function createCsr(keys: CryptoKeyPair, spiffeId: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  })
  return `${csr.toString('pem')}\n`
}

interface LeafParams {
  subjectPublicKey: CryptoKey | x509.PublicKey
  uris: readonly string[]
  dnsNames?: readonly string[]
  notBefore: Date
  notAfter: Date
}

async function signLeaf(ca: RootCa, p: LeafParams): Promise<{ cert: x509.X509Certificate; serial: string }> {
  const names: x509.JsonGeneralName[] = [
    ...p.uris.map((value) => ({ type: 'url' as const, value })),
    ...(p.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ]
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    await x509.SubjectKeyIdentifierExtension.create(p.subjectPublicKey),
  ]
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names))
  const serial = randomSerial()
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: workloadSubject(ca.trustDomain),
    issuer: ca.cert.subjectName,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.subjectPublicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: SIGNING,
    extensions,
  })
  return { cert, serial }
}

/** A workload SPIFFE ID: valid syntax and a non-empty path (the bare trust-domain ID names no workload). */
function checkWorkloadId(ca: RootCa, spiffeId: string): void {
  const id = parseSpiffeId(spiffeId)
  if (!id || id.path === '') throw new CaError('REMORA_ERR_CA_BAD_SPIFFE_ID', JSON.stringify(String(spiffeId).slice(0, 200)))
  if (id.trustDomain !== ca.trustDomain) {
    throw new CaError('REMORA_ERR_CA_TRUST_DOMAIN', `${id.uri} is not in trust domain ${ca.trustDomain}`)
  }
}

function validity(
  opts: { ttlMs?: number; notBefore?: Date; notAfter?: Date },
  clock: Clock,
): { notBefore: Date; notAfter: Date } {
  const now = clock.now()
  const ttl = opts.ttlMs ?? DEFAULT_LEAF_TTL_MS
  const notBefore = opts.notBefore ?? new Date(now - BACKDATE_MS)
  // The TTL counts from "now" (or from an explicit notBefore), not from the backdated start.
  const notAfter = opts.notAfter ?? new Date((opts.notBefore?.getTime() ?? now) + ttl)
  return { notBefore, notAfter }
}

/**
 * Signs a workload certificate for `opts.spiffeId` from a CSR. The CA copies nothing from the CSR
 * but its public key: the SAN, subject, usages and validity are the CA's own choice.
 */
export async function issueFromCsr(
  ca: RootCa,
  csrPem: string,
  opts: { spiffeId: string; ttlMs?: number; notBefore?: Date },
  deps: { clock: Clock },
): Promise<IssuedCert> {
  checkWorkloadId(ca, opts.spiffeId)
  let csr: x509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem)
  } catch (err) {
    throw new CaError('REMORA_ERR_CA_CSR_INVALID', 'cannot parse the CSR', { cause: err })
  }
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new CaError('REMORA_ERR_CA_CSR_INVALID', 'the CSR key must be ECDSA P-256')
  }
  let signatureOk = false
  try {
    signatureOk = await csr.verify()
  } catch (err) {
    throw new CaError('REMORA_ERR_CA_CSR_INVALID', 'cannot verify the CSR signature', { cause: err })
  }
  if (!signatureOk) throw new CaError('REMORA_ERR_CA_CSR_INVALID', 'the CSR signature does not verify')
  const uris = csrUris(csr)
  if (uris.length !== 1 || uris[0] !== opts.spiffeId) {
    const asked = uris.length === 0 ? 'no URI SAN' : uris.map((u) => JSON.stringify(u.slice(0, 200))).join(', ')
    throw new CaError('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH', `CSR asks for ${asked}, issuing ${opts.spiffeId}`)
  }
  const { notBefore, notAfter } = validity(opts, deps.clock)
  const { cert, serial } = await signLeaf(ca, { subjectPublicKey: csr.publicKey, uris, notBefore, notAfter })
  // The dates as encoded (whole seconds), so that renewal timers match what peers will check.
  return { certPem: `${cert.toString('pem')}\n`, notBefore: cert.notBefore, notAfter: cert.notAfter, serial }
}

function csrUris(csr: x509.Pkcs10CertificateRequest): string[] {
  const exts = csr.getExtensions(OID_SAN)
  if (exts.length > 1) throw new CaError('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH', 'the CSR has more than one subjectAltName extension')
  const ext = exts[0]
  if (!ext) return []
  const san = ext instanceof x509.SubjectAlternativeNameExtension ? ext : new x509.SubjectAlternativeNameExtension(ext.rawData)
  return san.names.items.filter((n) => n.type === 'url').map((n) => n.value)
}

/**
 * Mints a key and a certificate in one go, for static set-ups and tests. Unlike issueFromCsr it
 * does not police the identity: `uris` may be empty, several, or foreign, and `notBefore`/`notAfter`
 * may make an expired or not-yet-valid certificate.
 */
export async function issueWorkloadCert(
  ca: RootCa,
  opts: { spiffeId?: string; uris?: string[]; dnsNames?: string[]; ttlMs?: number; notBefore?: Date; notAfter?: Date },
  deps: { clock: Clock },
): Promise<IssuedCert & { keyPem: string }> {
  const uris = opts.uris ?? (opts.spiffeId !== undefined ? [opts.spiffeId] : [])
  const { notBefore, notAfter } = validity(opts, deps.clock)
  const { keys, keyPem } = await generateKeyPair()
  const { cert, serial } = await signLeaf(ca, { subjectPublicKey: keys.publicKey, uris, dnsNames: opts.dnsNames, notBefore, notAfter })
  return { certPem: `${cert.toString('pem')}\n`, keyPem, notBefore: cert.notBefore, notAfter: cert.notAfter, serial }
}

export const systemClock: Clock = { now: () => Date.now() }
