// The sidecar's hand-written PKCS#10 request: what the control plane's CA and an independent
// ASN.1 reader (@peculiar/x509, the library the request used to be made with) read from it.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto'
import { expect, test } from 'vitest'
import { createKeyAndCsr, csrFor } from '../../../proxy/xds/csr.js'
import { createRootCa, issueFromCsr } from '../../../control-plane/ca/ca.js'

const ID = 'spiffe://cluster.local/ns/shop/sa/orders'
x509.cryptoProvider.set(globalThis.crypto)

async function read(csrPem: string): Promise<{ version: number; subject: string; curve: string; san: { critical: boolean; uris: string[] }[]; signatureOk: boolean; spki: Buffer; sigAlg: string }> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem)
  const san = csr.extensions.filter((e) => e.type === '2.5.29.17').map((e) => {
    const ext = new x509.SubjectAlternativeNameExtension(e.rawData)
    return { critical: ext.critical, uris: ext.names.items.filter((n) => n.type === 'url').map((n) => n.value) }
  })
  return {
    version: new Uint8Array(csr.rawData)[csrVersionOffset(new Uint8Array(csr.rawData))]!,
    subject: csr.subject,
    curve: (csr.publicKey.algorithm as EcKeyAlgorithm).namedCurve,
    san,
    signatureOk: await csr.verify(),
    spki: Buffer.from(csr.publicKey.rawData),
    sigAlg: (csr.signatureAlgorithm as EcdsaParams & { hash: { name: string } }).hash.name,
  }
}

/** Offset of the version INTEGER's value byte: SEQUENCE { SEQUENCE { INTEGER ... (two tag+length headers). */
function csrVersionOffset(der: Uint8Array): number {
  const header = (at: number): number => (der[at + 1]! < 0x80 ? 2 : 2 + (der[at + 1]! & 0x7f))
  const info = header(0)
  const version = info + header(info)
  return version + 2
}

test('it reads back as version 1 (0), empty subject, P-256 key of the private key, one critical URI SAN, a valid ecdsa-with-SHA256 signature', async () => {
  const { keyPem, csrPem } = await createKeyAndCsr(ID)
  expect(csrPem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE REQUEST-----\n$/)
  expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
  const r = await read(csrPem)
  expect(r.version).toBe(0)
  expect(r.subject).toBe('')
  expect(r.curve).toBe('P-256')
  expect(r.san).toEqual([{ critical: true, uris: [ID] }])
  expect(r.signatureOk).toBe(true)
  expect(r.sigAlg).toBe('SHA-256')
  // The request's key is the private key's public half.
  expect(r.spki.equals(createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }))).toBe(true)
})

test('the CA issues for it: a leaf with exactly that SPIFFE ID and the request key', async () => {
  const clock = { now: () => Date.now() }
  const ca = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
  const { keyPem, csrPem } = await createKeyAndCsr(ID)
  const issued = await issueFromCsr(ca, csrPem, { spiffeId: ID, ttlMs: 3_600_000 }, { clock })
  const leaf = new X509Certificate(issued.certPem)
  expect(leaf.subjectAltName).toBe(`URI:${ID}`)
  expect(leaf.checkPrivateKey(createPrivateKey(keyPem))).toBe(true)
})

test('a request whose signature does not match its key is refused by the CA', async () => {
  const clock = { now: () => Date.now() }
  const ca = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
  const { csrPem } = await createKeyAndCsr(ID)
  const der = Buffer.from(csrPem.split('\n').filter((l) => !l.startsWith('-----')).join(''), 'base64')
  der[der.length - 5]! ^= 0x01 // inside the signature
  const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
  await expect(issueFromCsr(ca, bad, { spiffeId: ID, ttlMs: 3_600_000 }, { clock })).rejects.toThrow()
})

test('long SPIFFE IDs (two-byte DER lengths) and refusal of what is not one', async () => {
  const { keyPem } = await createKeyAndCsr(ID)
  const long = `spiffe://cluster.local/ns/${'n'.repeat(63)}/sa/${'s'.repeat(253)}`
  const r = await read(csrFor(keyPem, long))
  expect(r.san).toEqual([{ critical: true, uris: [long] }])
  expect(r.signatureOk).toBe(true)
  expect(() => csrFor(keyPem, 'https://example.com')).toThrow(/not a SPIFFE ID/)
  expect(() => csrFor(keyPem, 'spiffe://a/\nb')).toThrow(/not a SPIFFE ID/)
})
