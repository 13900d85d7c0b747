// Certificates from our CA must work with Node's own TLS 1.3 stack, mutual auth included, and
// OpenSSL must refuse expired and foreign ones. Real sockets on loopback, port 0.
import { once } from 'node:events'
import { X509Certificate } from 'node:crypto'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { afterEach, expect, test } from 'vitest'
import { createTestPki, type Leaf, type TestPki } from '../../helpers/pki.js'

const SERVER_ID = 'spiffe://cluster.local/ns/shop/sa/orders'
const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/frontend'

interface MtlsServer {
  port: number
  accepted: string[]
  close(): Promise<void>
}

const servers: MtlsServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

async function startServer(pki: TestPki, leaf: Leaf): Promise<MtlsServer> {
  const accepted: string[] = []
  const server = tls.createServer(
    { cert: leaf.certPem, key: leaf.keyPem, ca: [pki.caPem], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (socket) => {
      accepted.push(socket.getPeerCertificate().subjectaltname ?? '')
      socket.end('hello\n')
    },
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const s: MtlsServer = {
    port: (server.address() as AddressInfo).port,
    accepted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
  servers.push(s)
  return s
}

interface Outcome {
  secureConnected: boolean
  received: string
  serverSan: string | null
  error: NodeJS.ErrnoException | null
}

/** Connects and reads until close. In TLS 1.3 a refused client cert shows as secureConnect, then a close with nothing received (the server learns nothing more than a hang-up either). */
async function connect(port: number, caPem: string, leaf: Leaf, expectedServerId = SERVER_ID): Promise<Outcome> {
  const out: Outcome = { secureConnected: false, received: '', serverSan: null, error: null }
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: [caPem],
    cert: leaf.certPem,
    key: leaf.keyPem,
    minVersion: 'TLSv1.3',
    // Secure naming: accept the server by its SPIFFE URI SAN, not by host name.
    checkServerIdentity: (_host, cert) =>
      cert.subjectaltname === `URI:${expectedServerId}` ? undefined : new Error(`server is ${cert.subjectaltname}, expected ${expectedServerId}`),
  })
  socket.setEncoding('utf8')
  socket.on('secureConnect', () => {
    out.secureConnected = true
    out.serverSan = socket.getPeerCertificate().subjectaltname ?? null
  })
  socket.on('data', (d: string) => (out.received += d))
  socket.on('error', (err) => (out.error = err))
  // Not events.once(): it rejects on 'error', and an error is an outcome here.
  await new Promise((resolve) => socket.on('close', resolve))
  return out
}

test('tls: a client with a leaf from the same CA completes a TLS 1.3 mutual handshake and both sides see the URI SAN', async () => {
  const pki = await createTestPki()
  const server = await startServer(pki, await pki.issue(SERVER_ID))
  const res = await connect(server.port, pki.caPem, await pki.issue(CLIENT_ID))
  expect(res.error).toBeNull()
  expect(res.received).toBe('hello\n')
  expect(res.serverSan).toBe(`URI:${SERVER_ID}`)
  expect(server.accepted).toEqual([`URI:${CLIENT_ID}`])
})

test('tls: a client with an expired certificate is refused by the server', async () => {
  const pki = await createTestPki()
  const server = await startServer(pki, await pki.issue(SERVER_ID))
  const leaf = await pki.issue(CLIENT_ID, { expired: true })
  expect(Date.parse(new X509Certificate(leaf.certPem).validTo)).toBeLessThan(Date.now())
  const res = await connect(server.port, pki.caPem, leaf)
  // TLS 1.3: the client finishes its side of the handshake before the server checks its cert.
  expect(res.secureConnected).toBe(true)
  expect(res.received).toBe('')
  expect(server.accepted).toEqual([])
})

test('tls: a client with a not-yet-valid certificate is refused by the server', async () => {
  const pki = await createTestPki()
  const server = await startServer(pki, await pki.issue(SERVER_ID))
  const leaf = await pki.issue(CLIENT_ID, { notYetValid: true })
  expect(Date.parse(new X509Certificate(leaf.certPem).validFrom)).toBeGreaterThan(Date.now())
  const res = await connect(server.port, pki.caPem, leaf)
  expect(res.secureConnected).toBe(true)
  expect(res.received).toBe('')
  expect(server.accepted).toEqual([])
})

test('tls: a client with a certificate from another CA is refused by the server', async () => {
  const pki = await createTestPki()
  const other = await createTestPki()
  const server = await startServer(pki, await pki.issue(SERVER_ID))
  const res = await connect(server.port, pki.caPem, await other.issue(CLIENT_ID))
  expect(res.secureConnected).toBe(true)
  expect(res.received).toBe('')
  expect(server.accepted).toEqual([])
})

test('tls: a server with a certificate from another CA is refused by the client', async () => {
  const pki = await createTestPki()
  const other = await createTestPki()
  const server = await startServer(pki, await other.issue(SERVER_ID))
  const res = await connect(server.port, pki.caPem, await pki.issue(CLIENT_ID))
  expect(res.secureConnected).toBe(false)
  expect(res.error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  expect(server.accepted).toEqual([])
})

test('tls: a server with an expired certificate is refused by the client', async () => {
  const pki = await createTestPki()
  const server = await startServer(pki, await pki.issue(SERVER_ID, { expired: true }))
  const res = await connect(server.port, pki.caPem, await pki.issue(CLIENT_ID))
  expect(res.secureConnected).toBe(false)
  expect(res.error?.code).toBe('CERT_HAS_EXPIRED')
})

test('tls: a server whose URI SAN is not the expected identity is refused by the client (secure naming)', async () => {
  const pki = await createTestPki()
  const server = await startServer(pki, await pki.issue('spiffe://cluster.local/ns/shop/sa/impostor'))
  const res = await connect(server.port, pki.caPem, await pki.issue(CLIENT_ID))
  expect(res.secureConnected).toBe(false)
  expect(res.error?.message).toMatch(/expected spiffe:\/\/cluster.local\/ns\/shop\/sa\/orders/)
})
