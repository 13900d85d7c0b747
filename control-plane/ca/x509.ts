// @peculiar/x509 needs reflect-metadata loaded before it and a WebCrypto provider; doing both in
// one place means no other file can import x509 in the wrong order.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(globalThis.crypto)

export { x509 }
