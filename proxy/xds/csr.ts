// A fresh ECDSA P-256 key and a CSR for exactly one SPIFFE ID. The private key is generated here
// and never leaves the sidecar. @peculiar/x509 needs reflect-metadata first and a WebCrypto provider.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(globalThis.crypto)
const subtle = globalThis.crypto.subtle

export async function createKeyAndCsr(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  })
  const keyPem = `${x509.PemConverter.encode(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')}\n`
  return { keyPem, csrPem: `${csr.toString('pem')}\n` }
}
