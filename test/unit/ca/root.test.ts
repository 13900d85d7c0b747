import { X509Certificate } from 'node:crypto'
import { expect, test } from 'vitest'
import { CaError, createRootCa, loadRootCa } from '../../../control-plane/ca/index.js'
import { x509 } from '../../../control-plane/ca/x509.js'

const NOW = Date.parse('2030-01-01T00:00:00Z')
const clock = { now: () => NOW }
const YEAR = 365 * 24 * 3_600_000

test('createRootCa: a self-signed CA:true root with keyCertSign+cRLSign, 10 years from the injected clock, backdated 1 minute', async () => {
  const ca = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
  const cert = new X509Certificate(ca.certPem)
  expect(cert.ca).toBe(true)
  expect(cert.checkIssued(cert)).toBe(true)
  expect(cert.verify(cert.publicKey)).toBe(true)
  expect(Date.parse(cert.validFrom)).toBe(NOW - 60_000)
  expect(Date.parse(cert.validTo)).toBe(NOW - 60_000 + 10 * YEAR)
  expect(cert.subjectAltName).toBe('URI:spiffe://cluster.local')
  expect(ca.trustDomain).toBe('cluster.local')
  const ku = ca.cert.getExtension(x509.KeyUsagesExtension)
  expect(ku?.critical).toBe(true)
  expect(ku?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)
  expect(ca.cert.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, critical: true })
  expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
})

test('createRootCa: an explicit notBefore and validity are used as given', async () => {
  const notBefore = new Date('2029-06-01T00:00:00Z')
  const ca = await createRootCa({ trustDomain: 'example.org', validityMs: 3_600_000, notBefore, commonName: 'my root' }, { clock })
  expect(ca.cert.notBefore.getTime()).toBe(notBefore.getTime())
  expect(ca.cert.notAfter.getTime()).toBe(notBefore.getTime() + 3_600_000)
  expect(ca.cert.subject).toBe('CN=my root, O=remora')
})

test('createRootCa: an invalid trust domain is refused with REMORA_ERR_CA_TRUST_DOMAIN', async () => {
  await expect(createRootCa({ trustDomain: 'Cluster.Local/x' }, { clock })).rejects.toMatchObject({ code: 'REMORA_ERR_CA_TRUST_DOMAIN' })
})

test('createRootCa: two roots get different random 16-byte positive serials', async () => {
  const [a, b] = await Promise.all([createRootCa({ trustDomain: 'cluster.local' }, { clock }), createRootCa({ trustDomain: 'cluster.local' }, { clock })])
  for (const ca of [a, b]) expect(ca.cert.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/i)
  expect(a.cert.serialNumber).not.toBe(b.cert.serialNumber)
})

test('loadRootCa: PEMs round-trip and the trust domain is read back from the root', async () => {
  const ca = await createRootCa({ trustDomain: 'prod.example' }, { clock })
  const loaded = await loadRootCa(ca.certPem, ca.keyPem)
  expect(loaded.trustDomain).toBe('prod.example')
  expect(loaded.certPem).toBe(ca.certPem)
  expect(loaded.keyPem).toBe(ca.keyPem)
})

test('loadRootCa: a key that does not belong to the certificate is refused', async () => {
  const a = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
  const b = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
  const err = await loadRootCa(a.certPem, b.keyPem).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(CaError)
  expect((err as CaError).code).toBe('REMORA_ERR_CA_ROOT_INVALID')
})

test('loadRootCa: an unreadable key is refused without echoing it in the message', async () => {
  const a = await createRootCa({ trustDomain: 'cluster.local' }, { clock })
  const err = (await loadRootCa(a.certPem, 'not a key SECRETMARKER').catch((e: unknown) => e)) as CaError
  expect(err.code).toBe('REMORA_ERR_CA_ROOT_INVALID')
  expect(err.message).not.toContain('SECRETMARKER')
})
