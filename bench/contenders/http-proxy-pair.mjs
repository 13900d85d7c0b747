// One side of the `http-proxy` pair: the naive Node baseline of the benchmark.
// Plain JavaScript on purpose: it runs on bare `node`, without a TypeScript loader in the process
// (that would add memory and start-up work no real deployment of it would have).
//
//   node http-proxy-pair.mjs outbound <port> <inboundHost:port> <cert> <key> <ca> <expectedSpiffeId>
//   node http-proxy-pair.mjs inbound  <port> <appHost:port>     <cert> <key> <ca>
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import httpProxy from 'http-proxy'

const [role, portText, upstream, certFile, keyFile, caFile, expectedId] = process.argv.slice(2)
const port = Number(portText)
const [upHost, upPort] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))]
const cert = readFileSync(certFile)
const key = readFileSync(keyFile)
const ca = readFileSync(caFile)

let server
if (role === 'outbound') {
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 256,
    cert,
    key,
    ca,
    minVersion: 'TLSv1.3',
    // Secure naming, naively: the server must present the expected SPIFFE URI SAN (the chain is
    // still verified by OpenSSL).
    checkServerIdentity: (_host, peer) => (String(peer.subjectaltname ?? '').split(', ').includes(`URI:${expectedId}`) ? undefined : new Error('unexpected server identity')),
  })
  const proxy = httpProxy.createProxyServer({ target: `https://${upHost}:${upPort}`, agent, secure: true, xfwd: false })
  proxy.on('error', (_err, _req, res) => {
    if (res && !res.headersSent && typeof res.writeHead === 'function') res.writeHead(502).end()
    else res?.destroy?.()
  })
  server = http.createServer((req, res) => proxy.web(req, res))
} else {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  const proxy = httpProxy.createProxyServer({ target: `http://${upHost}:${upPort}`, agent, xfwd: false })
  proxy.on('error', (_err, _req, res) => {
    if (res && !res.headersSent && typeof res.writeHead === 'function') res.writeHead(502).end()
    else res?.destroy?.()
  })
  server = https.createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (req, res) => proxy.web(req, res))
}
server.keepAliveTimeout = 300_000
server.headersTimeout = 301_000
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => {
  server.close()
  server.closeAllConnections?.()
  process.exit(0)
})
