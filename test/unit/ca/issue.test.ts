import { createPrivateKey, X509Certificate } from 'node:crypto'
import { beforeAll, expect, test } from 'vitest'
import {
  CaError,
  CA_ERRORS,
  createCsr,
  createRootCa,
  generateKeyPair,
  issueFromCsr,
  issueWorkloadCert,
  type RootCa,
} from '../../../control-plane/ca/index.js'
import { x509 } from '../../../control-plane/ca/x509.js'

const NOW = Date.parse('2030-01-01T00:00:00Z')
const clock = { now: () => NOW }
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders'

let ca: RootCa
beforeAll(async () => {
  ca = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
})

async function csrFor(spiffeId: string): Promise<string> {
  const { keys } = await generateKeyPair()
  return createCsr(keys, spiffeId)
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(CaError)
  return (err as CaError).code
}

test('issueFromCsr: a leaf with exactly the URI SAN, serverAuth+clientAuth, CA:false, signed by the root, valid 24 h from the clock', async () => {
  const res = await issueFromCsr(ca, await csrFor(ORDERS), { spiffeId: ORDERS }, { clock })
  const leaf = new X509Certificate(res.certPem)
  const root = new X509Certificate(ca.certPem)
  expect(leaf.subjectAltName).toBe(`URI:${ORDERS}`)
  expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'])
  expect(leaf.ca).toBe(false)
  expect(leaf.checkIssued(root)).toBe(true)
  expect(leaf.verify(root.publicKey)).toBe(true)
  expect(res.notBefore.getTime()).toBe(NOW - 60_000)
  expect(res.notAfter.getTime()).toBe(NOW + 24 * 3_600_000)
  expect(Date.parse(leaf.validTo)).toBe(res.notAfter.getTime())
  expect(res.serial.toUpperCase()).toBe(leaf.serialNumber)
})

test('issueFromCsr: keyUsage digitalSignature+keyEncipherment and an authorityKeyIdentifier equal to the root key id', async () => {
  const { certPem } = await issueFromCsr(ca, await csrFor(ORDERS), { spiffeId: ORDERS }, { clock })
  const leaf = new x509.X509Certificate(certPem)
  const ku = leaf.getExtension(x509.KeyUsagesExtension)
  expect(ku?.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment)
  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)
  const ski = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)
  expect(aki?.keyId).toBeDefined()
  expect(aki?.keyId).toBe(ski?.keyId)
})

test('issueFromCsr: ttlMs sets the lifetime', async () => {
  const res = await issueFromCsr(ca, await csrFor(ORDERS), { spiffeId: ORDERS, ttlMs: 3_600_000 }, { clock })
  expect(res.notAfter.getTime()).toBe(NOW + 3_600_000)
})

test('issueFromCsr: the certificate carries the CSR public key', async () => {
  const { keys } = await generateKeyPair()
  const { certPem } = await issueFromCsr(ca, await createCsr(keys, ORDERS), { spiffeId: ORDERS }, { clock })
  const spki = Buffer.from(await globalThis.crypto.subtle.exportKey('spki', keys.publicKey))
  expect(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true)
})

test('issueFromCsr: a CSR for another identity is refused with REMORA_ERR_CA_CSR_IDENTITY_MISMATCH', async () => {
  const csr = await csrFor('spiffe://cluster.local/ns/shop/sa/payments')
  expect(await codeOf(issueFromCsr(ca, csr, { spiffeId: ORDERS }, { clock }))).toBe('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH')
})

test('issueFromCsr: a CSR with two URI SANs is refused with REMORA_ERR_CA_CSR_IDENTITY_MISMATCH', async () => {
  const { keys } = await generateKeyPair()
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ORDERS }, { type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/admin' }])],
  })
  expect(await codeOf(issueFromCsr(ca, csr.toString('pem'), { spiffeId: ORDERS }, { clock }))).toBe('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH')
})

test('issueFromCsr: a CSR without a URI SAN is refused with REMORA_ERR_CA_CSR_IDENTITY_MISMATCH', async () => {
  const { keys } = await generateKeyPair()
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, name: 'CN=orders', signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } })
  expect(await codeOf(issueFromCsr(ca, csr.toString('pem'), { spiffeId: ORDERS }, { clock }))).toBe('REMORA_ERR_CA_CSR_IDENTITY_MISMATCH')
})

test('issueFromCsr: a CSR altered after signing is refused with REMORA_ERR_CA_CSR_INVALID', async () => {
  const original = 'spiffe://cluster.local/ns/shop/sa/orderz'
  const pem = await csrFor(original)
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
  const at = der.indexOf(Buffer.from(original))
  expect(at).toBeGreaterThan(0)
  der.write(ORDERS, at, 'latin1') // same length: only the signature stops matching
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
  expect(await codeOf(issueFromCsr(ca, tampered, { spiffeId: ORDERS }, { clock }))).toBe('REMORA_ERR_CA_CSR_INVALID')
})

test('issueFromCsr: input that is not a CSR is refused with REMORA_ERR_CA_CSR_INVALID', async () => {
  expect(await codeOf(issueFromCsr(ca, 'garbage', { spiffeId: ORDERS }, { clock }))).toBe('REMORA_ERR_CA_CSR_INVALID')
})

test('issueFromCsr: a malformed SPIFFE ID is refused with REMORA_ERR_CA_BAD_SPIFFE_ID', async () => {
  const bad = 'spiffe://cluster.local/ns/../sa/orders'
  expect(await codeOf(issueFromCsr(ca, await csrFor(ORDERS), { spiffeId: bad }, { clock }))).toBe('REMORA_ERR_CA_BAD_SPIFFE_ID')
})

test('issueFromCsr: the bare trust-domain ID (no workload path) is refused with REMORA_ERR_CA_BAD_SPIFFE_ID', async () => {
  const td = 'spiffe://cluster.local'
  expect(await codeOf(issueFromCsr(ca, await csrFor(td), { spiffeId: td }, { clock }))).toBe('REMORA_ERR_CA_BAD_SPIFFE_ID')
})

test('issueFromCsr: an identity in another trust domain is refused with REMORA_ERR_CA_TRUST_DOMAIN', async () => {
  const foreign = 'spiffe://evil.example/ns/shop/sa/orders'
  expect(await codeOf(issueFromCsr(ca, await csrFor(foreign), { spiffeId: foreign }, { clock }))).toBe('REMORA_ERR_CA_TRUST_DOMAIN')
})

test('issueFromCsr: a CSR with a non-P-256 key is refused with REMORA_ERR_CA_CSR_INVALID', async () => {
  const keys = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ORDERS }])],
  })
  expect(await codeOf(issueFromCsr(ca, csr.toString('pem'), { spiffeId: ORDERS }, { clock }))).toBe('REMORA_ERR_CA_CSR_INVALID')
})

test('issueWorkloadCert: uris overrides the SANs ([] = none, two = two) and dnsNames are added', async () => {
  const none = await issueWorkloadCert(ca, { spiffeId: ORDERS, uris: [] }, { clock })
  expect(new X509Certificate(none.certPem).subjectAltName).toBeUndefined()
  const two = await issueWorkloadCert(ca, { uris: [ORDERS, 'spiffe://cluster.local/ns/shop/sa/b'], dnsNames: ['orders.shop'] }, { clock })
  expect(new X509Certificate(two.certPem).subjectAltName).toBe(`URI:${ORDERS}, URI:spiffe://cluster.local/ns/shop/sa/b, DNS:orders.shop`)
})

test('issueWorkloadCert: explicit notBefore/notAfter mint a certificate outside its validity, and the key matches the cert', async () => {
  const res = await issueWorkloadCert(ca, { spiffeId: ORDERS, notBefore: new Date(NOW - 7_200_000), notAfter: new Date(NOW - 3_600_000) }, { clock })
  const leaf = new X509Certificate(res.certPem)
  expect(Date.parse(leaf.validTo)).toBe(NOW - 3_600_000)
  expect(leaf.checkPrivateKey(createPrivateKey(res.keyPem))).toBe(true)
})

test('errors: every catalog code has the REMORA_ERR_CA_ prefix and CaError carries code and status', () => {
  for (const code of Object.keys(CA_ERRORS)) expect(code).toMatch(/^REMORA_ERR_CA_[A-Z_]+$/)
  const err = new CaError('REMORA_ERR_CA_TRUST_DOMAIN', 'x')
  expect(err).toBeInstanceOf(Error)
  expect(err.code).toBe('REMORA_ERR_CA_TRUST_DOMAIN')
  expect(err.status).toBe(403)
})
