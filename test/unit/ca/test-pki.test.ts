// The shared test PKI must mint what it promises, or every integration test built on it lies.
import { X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { createTestPki } from '../../helpers/pki.js'

const ID = 'spiffe://cluster.local/ns/shop/sa/orders'

test('test pki: defaults to trust domain cluster.local and issues a currently valid leaf with the URI SAN', async () => {
  const pki = await createTestPki()
  expect(pki.trustDomain).toBe('cluster.local')
  const leaf = await pki.issue(ID)
  const cert = new X509Certificate(leaf.certPem)
  expect(leaf.spiffeId).toBe(ID)
  expect(cert.subjectAltName).toBe(`URI:${ID}`)
  expect(cert.verify(new X509Certificate(pki.caPem).publicKey)).toBe(true)
  expect(Date.parse(cert.validFrom)).toBeLessThanOrEqual(Date.now())
  expect(Date.parse(cert.validTo)).toBeGreaterThan(Date.now())
})

test('test pki: expired leaves have both dates in the past', async () => {
  const cert = new X509Certificate((await (await createTestPki()).issue(ID, { expired: true })).certPem)
  expect(Date.parse(cert.validTo)).toBeLessThan(Date.now())
  expect(Date.parse(cert.validFrom)).toBeLessThan(Date.parse(cert.validTo))
})

test('test pki: not-yet-valid leaves start in the future', async () => {
  const cert = new X509Certificate((await (await createTestPki()).issue(ID, { notYetValid: true })).certPem)
  expect(Date.parse(cert.validFrom)).toBeGreaterThan(Date.now())
})

test('test pki: uris overrides the SANs and the leaf then reports spiffeId null', async () => {
  const pki = await createTestPki({ trustDomain: 'example.org' })
  const leaf = await pki.issue('spiffe://example.org/a', { uris: [] })
  expect(leaf.spiffeId).toBeNull()
  expect(new X509Certificate(leaf.certPem).subjectAltName).toBeUndefined()
})

test('test pki: writeFiles writes <name>.pem, <name>-key.pem (0600) and ca.pem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'remora-pki-'))
  try {
    const pki = await createTestPki()
    const leaf = await pki.issue(ID)
    const files = await pki.writeFiles(join(dir, 'sub'), 'orders', leaf)
    expect(files).toEqual({ certFile: join(dir, 'sub', 'orders.pem'), keyFile: join(dir, 'sub', 'orders-key.pem'), caFile: join(dir, 'sub', 'ca.pem') })
    expect(await readFile(files.certFile, 'utf8')).toBe(leaf.certPem)
    expect(await readFile(files.caFile, 'utf8')).toBe(pki.caPem)
    expect((await stat(files.keyFile)).mode & 0o777).toBe(0o600)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
