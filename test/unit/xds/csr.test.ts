// The sidecar's hand-written PKCS#10 request: what the control plane's CA (and OpenSSL) read from it.
import { execFileSync } from 'node:child_process'
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto'
import { expect, test } from 'vitest'
import { createKeyAndCsr, csrFor } from '../../../proxy/xds/csr.js'
import { createRootCa, issueFromCsr } from '../../../control-plane/ca/ca.js'

const ID = 'spiffe://cluster.local/ns/shop/sa/orders'

test('OpenSSL reads it: version 1 (0), empty subject, P-256 key, a critical URI SAN, a valid ecdsa-with-SHA256 signature', async () => {
  const { keyPem, csrPem } = await createKeyAndCsr(ID)
  expect(csrPem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE REQUEST-----\n$/)
  const text = execFileSync('openssl', ['req', '-noout', '-text', '-verify'], { input: csrPem, stdio: ['pipe', 'pipe', 'pipe'] }).toString()
  expect(text).toMatch(/Version: 1 \(0x0\)/)
  expect(text).toMatch(/Subject:\s*\n/)
  expect(text).toMatch(/NIST CURVE: P-256|ASN1 OID: prime256v1/)
  expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s*\n\s*URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders\s*\n/)
  expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/)
  // The request's key is the private key's public half.
  const pub = createPublicKey(execFileSync('openssl', ['req', '-noout', '-pubkey'], { input: csrPem }).toString())
  expect(pub.export({ type: 'spki', format: 'der' }).equals(createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }))).toBe(true)
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
  const text = execFileSync('openssl', ['req', '-noout', '-text', '-verify'], { input: csrFor(keyPem, long), stdio: ['pipe', 'pipe', 'pipe'] }).toString()
  expect(text).toContain(`URI:${long}`)
  expect(() => csrFor(keyPem, 'https://example.com')).toThrow(/not a SPIFFE ID/)
  expect(() => csrFor(keyPem, 'spiffe://a/\nb')).toThrow(/not a SPIFFE ID/)
})
