// A fresh ECDSA P-256 key and a PKCS#10 certificate request (RFC 2986) for exactly one SPIFFE ID.
// The private key is generated here and never leaves the sidecar.
//
// The request is written as DER by hand: node:crypto makes the key and the signature but cannot
// write a request, and the library that can (@peculiar/x509 with reflect-metadata) costs a sidecar
// 11 MB of memory and ~130 ms of start (bench/hot-path.md). What is written is one fixed shape:
//   CertificationRequest ::= SEQUENCE {
//     certificationRequestInfo SEQUENCE {
//       version INTEGER 0, subject Name (empty: the identity is the SAN), subjectPKInfo (P-256),
//       attributes [0] { extensionRequest (1.2.840.113549.1.9.14) { subjectAltName: URI } } },
//     signatureAlgorithm ecdsa-with-SHA256, signature BIT STRING }
// The SAN extension is critical, as RFC 5280 §4.2.1.6 requires with an empty subject.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14'
const OID_SUBJECT_ALT_NAME = '2.5.29.17'
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'

export async function createKeyAndCsr(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { keyPem: String(privateKey.export({ type: 'pkcs8', format: 'pem' })), csrPem: csrFor(privateKey, spiffeId) }
}

/** The PEM request for `spiffeId`, signed with `key` (an EC P-256 private key). */
export function csrFor(key: KeyObject | string, spiffeId: string): string {
  const priv = typeof key === 'string' ? createPrivateKey(key) : key
  if (!/^spiffe:\/\/[\x21-\x7e]+$/.test(spiffeId)) throw new Error(`not a SPIFFE ID: ${JSON.stringify(spiffeId.slice(0, 200))}`)
  const spki = createPublicKey(priv).export({ type: 'spki', format: 'der' }) // the public half, as SubjectPublicKeyInfo
  const san = seq(tlv(0x86, Buffer.from(spiffeId, 'ascii'))) // GeneralNames { [6] IA5String }
  const extension = seq(oid(OID_SUBJECT_ALT_NAME), tlv(0x01, Buffer.from([0xff])), tlv(0x04, san))
  const attributes = tlv(0xa0, seq(oid(OID_EXTENSION_REQUEST), tlv(0x31, seq(extension))))
  const info = seq(tlv(0x02, Buffer.from([0])), seq(), Buffer.from(spki), attributes)
  const signature = sign('sha256', info, priv) // DER ECDSA-Sig-Value
  const der = seq(info, seq(oid(OID_ECDSA_WITH_SHA256)), tlv(0x03, Buffer.concat([Buffer.from([0]), signature])))
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`
}

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff])
  if (n > 0xffff) throw new Error('DER element too long')
  return Buffer.concat([Buffer.from([tag]), len, body])
}

function seq(...parts: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(parts))
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]]
  const bytes = [40 * a + b]
  for (const v of rest) {
    const chunk = [v & 0x7f]
    for (let x = v >>> 7; x > 0; x >>>= 7) chunk.unshift((x & 0x7f) | 0x80)
    bytes.push(...chunk)
  }
  return tlv(0x06, Buffer.from(bytes))
}
