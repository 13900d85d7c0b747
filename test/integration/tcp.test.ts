// TCP and TLS through the mesh, without iptables: the sidecars' original-destination reader is
// replaced by a table keyed by the app's source port (what SO_ORIGINAL_DST would return after a
// REDIRECT); everything else is real: sockets, mTLS between the sidecars, L4 authorization, the
// outbound traffic policy, metrics and access-log lines. test/system/interception.test.ts runs the
// same paths with real iptables in network namespaces.
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { OriginalDst } from '../../proxy/pipeline/index.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startSidecar, until, type TestSidecar } from '../helpers/mesh.js'
import { metricValue, scrape } from '../helpers/metrics.js'

const VIP = '10.96.0.10'
const WEB_VIP = '10.96.0.20'
/** The next connection accepted on a listener port "was redirected from" this destination (one-shot). */
const pending = new Map<number, OriginalDst>()
const originalDst = (s: net.Socket): OriginalDst | null => {
  const od = pending.get(s.localPort ?? -1) ?? null
  pending.delete(s.localPort ?? -1)
  return od
}

function listen(server: net.Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)))
}

/** Upper-cases what it reads, and answers only after the caller's FIN (proves half-close). */
const dbServer = net.createServer({ allowHalfOpen: true }, (s) => {
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => {
    chunks.push(c)
    if (c.includes('!')) s.write(c.toString().toUpperCase())
  })
  s.on('end', () => s.end(`END:${Buffer.concat(chunks).toString().toUpperCase()}`))
})

/** Reads nothing until told to: a slow consumer. */
let slowSocket: net.Socket | null = null
let slowReceived = 0
const slowServer = net.createServer((s) => {
  slowSocket = s
  s.pause()
  s.on('data', (c: Buffer) => (slowReceived += c.length))
})

/** An app connection through `sidecar`'s outbound listener as if it had dialled `to`. */
function connectVia(sidecar: TestSidecar, to: OriginalDst): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    pending.set(sidecar.outbound, to)
    const s = net.connect({ host: '127.0.0.1', port: sidecar.outbound, allowHalfOpen: true })
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })
}

/** Sends `data`, half-closes, and reads until the other side closes. */
function exchange(s: net.Socket, data: string): Promise<{ reply: string; error: string | null }> {
  return new Promise((resolve) => {
    let reply = ''
    let error: string | null = null
    s.on('data', (c: Buffer) => (reply += c.toString()))
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message))
    s.on('close', () => resolve({ reply, error }))
    s.end(data)
  })
}

let pki: TestPki
let dbPort: number
let slowPort: number
let db: TestSidecar
let orders: TestSidecar
let batch: TestSidecar
let strictOut: TestSidecar
let podIp: TestSidecar
let web2: TestSidecar
const webServers: http.Server[] = []
let webA: number
let webB: number
let web: TestSidecar
let tlsServer: tls.Server
let tlsPort: number
let plainExternal: http.Server
let plainPort: number

const POLICIES = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: db-from-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: db } }
  rules:
  - from: [{ source: { principals: [cluster.local/ns/shop/sa/orders] } }]
    to: [{ operation: { ports: ["PORT"] } }]
`

beforeAll(async () => {
  pki = await createTestPki()
  dbPort = await listen(dbServer)
  slowPort = await listen(slowServer)
  db = await startSidecar({ pki, serviceAccount: 'db', app: `127.0.0.1:${dbPort}`, policies: POLICIES.replace('PORT', String(dbPort)), originalDst })
  for (const body of ['port-a', 'port-b']) {
    const s = http.createServer((req, res) => res.end(`${body} ${req.headers.host}`))
    webServers.push(s)
  }
  webA = await listen(webServers[0]!)
  webB = await listen(webServers[1]!)
  web = await startSidecar({ pki, serviceAccount: 'web', app: `127.0.0.1:${webA}`, originalDst })
  const clusters = [
    { name: 'db.shop', hosts: ['db.shop.svc.cluster.local', 'db'], endpoints: [`127.0.0.1:${db.inbound}`], identities: [db.spiffeId], addresses: [VIP], ports: [{ port: 5432, targetPort: dbPort }, { port: 7000, targetPort: dbPort, protocol: 'tcp' as const }] },
    { name: 'web.shop', hosts: ['web'], endpoints: [`127.0.0.1:${web.inbound}`], identities: [web.spiffeId], addresses: [WEB_VIP], ports: [{ port: 80, targetPort: webA, protocol: 'http' as const }, { port: 8080, targetPort: webB, protocol: 'http' as const }] },
  ]
  orders = await startSidecar({ pki, serviceAccount: 'orders', app: '127.0.0.1:1', clusters, originalDst, extra: { outbound: { port: 0, bind: '127.0.0.1', listeners: [{ port: 0, cluster: 'db.shop', servicePort: 5432 }, { port: 0, cluster: 'web.shop', targetPort: webB }] } } as never })
  batch = await startSidecar({ pki, serviceAccount: 'batch', app: '127.0.0.1:1', clusters, originalDst })
  // A pod with its own address (127.0.0.7 stands in for a pod IP): web2's sidecar listens on every
  // address, and the caller's cluster lists that address as web2's endpoint.
  web2 = await startSidecar({ pki, serviceAccount: 'web2', app: `127.0.0.1:${webA}`, originalDst, extra: { inbound: { port: 0, bind: '0.0.0.0', app: `127.0.0.1:${webA}` } } })
  podIp = await startSidecar({ pki, serviceAccount: 'podip', app: '127.0.0.1:1', originalDst, clusters: [{ name: 'web2.shop', hosts: ['web2'], endpoints: [`127.0.0.7:${web2.inbound}`], identities: [web2.spiffeId] }] })
  strictOut = await startSidecar({ pki, serviceAccount: 'strict', app: '127.0.0.1:1', clusters, originalDst, extra: { outbound: { port: 0, bind: '127.0.0.1', trafficPolicy: { mode: 'REGISTRY_ONLY', allowedHosts: ['localhost'] } } } })
  const leaf = await pki.issue('spiffe://example.com/api')
  tlsServer = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end(`hello ${s.servername}`))
  tlsPort = await listen(tlsServer)
  plainExternal = http.createServer((req, res) => res.end(`external ${req.headers.host}`))
  plainPort = await listen(plainExternal)
})

afterAll(async () => {
  for (const s of [orders, batch, strictOut, podIp, web2, db, web]) await s?.close()
  for (const s of [dbServer, slowServer, tlsServer, plainExternal, ...webServers]) s?.close()
})

describe('TCP to a meshed service by its VIP', () => {
  test('bytes cross the pair inside mTLS; half-close passes both ways', async () => {
    const s = await connectVia(orders, { address: VIP, port: 5432, family: 4 })
    const r = await exchange(s, 'select 1')
    expect(r.reply).toBe('END:SELECT 1')
    await until(() => db.accessLog.some((e) => e.protocol === 'TCP'), 3000, 'inbound TCP access log line')
    const inbound = db.accessLog.find((e) => e.protocol === 'TCP')!
    expect(inbound).toMatchObject({ direction: 'inbound', downstream_peer_principal: orders.spiffeId, connection_security_policy: 'mutual_tls', authz_decision: 'ALLOW', bytes_received: 8, upstream_cluster: `inbound|${dbPort}||` })
    await until(() => orders.accessLog.some((e) => e.protocol === 'TCP'), 3000, 'outbound TCP access log line')
    expect(orders.accessLog.find((e) => e.protocol === 'TCP')).toMatchObject({ direction: 'outbound', upstream_cluster: 'db.shop', connection_security_policy: 'mutual_tls', response_flags: '-' })
  })

  test('the server answers while the client is still sending (full duplex, no buffering to the end)', async () => {
    const s = await connectVia(orders, { address: VIP, port: 5432, family: 4 })
    const first = await new Promise<string>((resolve) => {
      s.once('data', (c: Buffer) => resolve(c.toString()))
      s.write('ping!')
    })
    expect(first).toBe('PING!')
    s.destroy()
  })

  test("Istio's TCP metrics on both sides", async () => {
    const s = await connectVia(orders, { address: VIP, port: 7000, family: 4 })
    await exchange(s, 'abc')
    const labels = { reporter: 'destination', source_principal: orders.spiffeId, request_protocol: 'tcp', connection_security_policy: 'mutual_tls' }
    await until(() => db.accessLog.filter((e) => e.protocol === 'TCP').length >= 3, 3000, 'three inbound TCP lines')
    const { families } = await scrape(db.admin, '/stats/prometheus')
    expect(metricValue(families, 'istio_tcp_connections_opened_total', labels)).toBeGreaterThanOrEqual(3)
    expect(metricValue(families, 'istio_tcp_connections_closed_total', labels)).toBeGreaterThanOrEqual(3)
    expect(metricValue(families, 'istio_tcp_received_bytes_total', labels)).toBeGreaterThanOrEqual(8 + 5 + 3)
    expect(metricValue(families, 'istio_tcp_sent_bytes_total', labels)).toBeGreaterThan(0)
    const out = await scrape(orders.admin, '/stats/prometheus')
    expect(metricValue(out.families, 'istio_tcp_connections_opened_total', { reporter: 'source', destination_service: 'db.shop.svc.cluster.local' })).toBeGreaterThanOrEqual(3)
    expect(metricValue(out.families, 'remora_protocol_detection_total', { direction: 'outbound', result: 'server_first' })).toBeGreaterThanOrEqual(1)
    expect(metricValue(out.families, 'remora_protocol_detection_total', { direction: 'outbound', result: 'declared' })).toBeGreaterThanOrEqual(1)
  })

  test('a local bind port for the cluster (outbound.listeners) carries TCP without interception', async () => {
    const [port] = orders.sidecar.listenerPorts
    const s = net.connect({ host: '127.0.0.1', port: port!, allowHalfOpen: true })
    await new Promise((r) => s.once('connect', r))
    expect((await exchange(s, 'local bind')).reply).toBe('END:LOCAL BIND')
  })

  test('HTTP through a local bind port goes to its cluster and workload port, whatever the Host says', async () => {
    const [, port] = orders.sidecar.listenerPorts
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: port!, path: '/', headers: { host: 'localhost' }, agent: false }, (res) => {
        let d = ''
        res.on('data', (c: Buffer) => (d += c.toString()))
        res.on('end', () => resolve(d))
      }).on('error', reject)
    })
    expect(body).toBe('port-b localhost')
  })
})

describe('back-pressure', () => {
  test('a consumer that does not read stops the producer: the sidecars buffer a bounded amount, then everything arrives', async () => {
    // the slow server sits behind web's sidecar (no policies), reached as web's workload port
    const s = await connectVia(orders, { address: WEB_VIP, port: slowPort, family: 4 })
    const chunk = Buffer.alloc(64 * 1024, 1)
    let written = 0
    // write until the kernel and both sidecars stop taking more
    for (let i = 0; i < 4096; i++) {
      written += chunk.length
      if (!s.write(chunk)) {
        const drained = await Promise.race([new Promise<boolean>((r) => s.once('drain', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 300))])
        if (!drained) break
      }
    }
    expect(written).toBeLessThan(4096 * chunk.length) // it stalled: back-pressure reached the caller
    await until(() => slowSocket !== null, 3000, 'the app saw the connection')
    slowSocket!.resume()
    s.end()
    await until(() => slowReceived === written, 10_000, `all ${written} bytes arrived`)
  })
})

describe('L4 authorization on the inbound side', () => {
  test('an identity the ALLOW policy does not name is cut off: no byte reaches the app, AZ in the access log', async () => {
    const before = db.accessLog.length
    const s = await connectVia(batch, { address: VIP, port: 5432, family: 4 })
    const r = await exchange(s, 'drop table')
    expect(r.reply).toBe('')
    await until(() => db.accessLog.length > before, 3000, 'the denial logged')
    expect(db.accessLog.at(-1)).toMatchObject({ protocol: 'TCP', authz_decision: 'DENY', response_flags: 'AZ', error_code: 'REMORA_ERR_AUTHZ_DENIED', downstream_peer_principal: batch.spiffeId, bytes_received: 0 })
  })
})

describe('TLS from the app passes through untouched', () => {
  test('ALLOW_ANY: an HTTPS server outside the mesh is reached by its original destination; SNI in the access log', async () => {
    const raw = await connectVia(orders, { address: '127.0.0.1', port: tlsPort, family: 4 })
    const s = tls.connect({ socket: raw, servername: 'api.example.com', rejectUnauthorized: false })
    const reply = await new Promise<string>((resolve, reject) => {
      let d = ''
      s.on('data', (c: Buffer) => (d += c.toString()))
      s.on('end', () => {
        resolve(d)
        s.end()
      })
      s.on('error', reject)
    })
    expect(reply).toBe('hello api.example.com')
    await until(() => orders.accessLog.some((e) => e.protocol === 'TLS'), 3000, 'TLS access log line')
    expect(orders.accessLog.find((e) => e.protocol === 'TLS')).toMatchObject({ requested_server_name: 'api.example.com', upstream_cluster: 'PassthroughCluster', upstream_host: `127.0.0.1:${tlsPort}` })
  })

  test('REGISTRY_ONLY refuses it (reset, counted, logged with the destination); an allowed host still passes', async () => {
    const raw = await connectVia(strictOut, { address: '127.0.0.1', port: tlsPort, family: 4 })
    const refused = await new Promise<string>((resolve) => {
      const s = tls.connect({ socket: raw, servername: 'api.example.com', rejectUnauthorized: false })
      s.on('secureConnect', () => resolve('connected'))
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
      s.on('close', () => resolve('closed'))
    })
    expect(refused).not.toBe('connected')
    expect(strictOut.accessLog.at(-1)).toMatchObject({ protocol: 'TLS', upstream_cluster: 'BlackHoleCluster', response_flags: 'NR', error_code: 'REMORA_ERR_REGISTRY_ONLY', requested_server_name: 'api.example.com' })
    expect(strictOut.logger.lines.some((l) => (l.obj as { event?: string }).event === 'outbound_refused')).toBe(true)
    const { families } = await scrape(strictOut.admin, '/stats/prometheus')
    expect(metricValue(families, 'remora_outbound_refused_total', { kind: 'tls' })).toBe(1)

    const raw2 = await connectVia(strictOut, { address: '127.0.0.1', port: tlsPort, family: 4 })
    const ok = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ socket: raw2, servername: 'localhost', rejectUnauthorized: false })
      let d = ''
      s.on('data', (c: Buffer) => (d += c.toString()))
      s.on('end', () => resolve(d))
      s.on('error', reject)
    })
    expect(ok).toBe('hello localhost')
  })

  test('REGISTRY_ONLY: an allowed SNI sent to another address is refused (the name must resolve to the destination)', async () => {
    const before = strictOut.accessLog.length
    const raw = await connectVia(strictOut, { address: '10.255.255.1', port: 443, family: 4 })
    const r = await new Promise<string>((resolve) => {
      const s = tls.connect({ socket: raw, servername: 'localhost', rejectUnauthorized: false })
      s.on('secureConnect', () => resolve('connected'))
      s.on('error', () => resolve('refused'))
      s.on('close', () => resolve('refused'))
    })
    expect(r).toBe('refused')
    await until(() => strictOut.accessLog.length > before, 3000, 'refusal logged')
    expect(strictOut.accessLog.at(-1)).toMatchObject({ upstream_cluster: 'BlackHoleCluster', error_code: 'REMORA_ERR_REGISTRY_ONLY', requested_server_name: 'localhost' })
  })
})

/** An HTTP/1.1 request through a sidecar's outbound listener as if the app had dialled `to`. */
function httpVia(sidecar: TestSidecar, to: OriginalDst | null, host: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: false })
    const req = http.request({ host: '127.0.0.1', port: sidecar.outbound, path: '/x', headers: { host }, agent }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
    })
    if (to) pending.set(sidecar.outbound, to)
    req.on('error', reject)
    req.end()
  })
}

describe('HTTP by original destination', () => {
  test('a second app port is reached without annotations: the port travels in the SNI, inbound forwards to it', async () => {
    expect((await httpVia(orders, null, 'web:8080')).body).toBe('port-b web:8080')
    expect((await httpVia(orders, null, 'web')).body).toBe('port-a web')
    expect((await httpVia(orders, { address: WEB_VIP, port: 8080, family: 4 }, 'anything.example')).body).toBe('port-b anything.example')
  })

  test('a pod dialled by its own IP (an endpoint address) is its cluster, on the port dialled', async () => {
    // not the configured app port (webA): the port the app dialled, on the address the caller reached
    const wide = http.createServer((req, res) => res.end(`wide ${req.headers.host}`))
    const widePort = await new Promise<number>((r) => wide.listen(0, '0.0.0.0', () => r((wide.address() as net.AddressInfo).port)))
    try {
      const r = await httpVia(podIp, { address: '127.0.0.7', port: widePort, family: 4 }, 'whatever')
      expect(r.body).toBe('wide whatever')
      expect(podIp.accessLog.at(-1)).toMatchObject({ upstream_cluster: 'web2.shop' })
      expect(web2.accessLog.at(-1)).toMatchObject({ upstream_host: `127.0.0.7:${widePort}` })
      // a server bound to loopback only stays private to its pod, whatever a peer asks for (Istio ≥ 1.10)
      const priv = await httpVia(podIp, { address: '127.0.0.7', port: webB, family: 4 }, 'whatever')
      expect(priv.status).toBe(503)
      expect(web2.accessLog.at(-1)).toMatchObject({ upstream_host: `127.0.0.7:${webB}`, response_flags: 'UF' })
    } finally {
      wide.close()
    }
  })

  test('ALLOW_ANY: a host outside the mesh goes to its original destination; REGISTRY_ONLY answers 502 NR', async () => {
    const to = { address: '127.0.0.1', port: plainPort, family: 4 as const }
    const r = await httpVia(orders, to, 'external.example')
    expect(r).toMatchObject({ status: 200, body: 'external external.example' })
    const refused = await httpVia(strictOut, to, 'external.example')
    expect(refused.status).toBe(502)
    expect(refused.headers['x-remora-error-code']).toBe('REMORA_ERR_REGISTRY_ONLY')
    expect(refused.headers['x-remora-response-flags']).toBe('NR')
    const allowed = await httpVia(strictOut, to, 'localhost')
    expect(allowed.status).toBe(200)
    // the Host is the app's to choose: an allowed name to another address is refused
    const spoofed = await httpVia(strictOut, { address: '10.255.255.1', port: 80, family: 4 }, 'localhost')
    expect(spoofed.status).toBe(502)
  })
})

describe('inbound never forwards to the sidecar itself', () => {
  test("a peer asking for the sidecar's admin port in its SNI is refused", async () => {
    const leaf = orders.leaf
    const s = tls.connect({ host: '127.0.0.1', port: db.inbound, cert: leaf.certPem, key: leaf.keyPem, ca: pki.caPem, servername: `outbound_.${db.admin}_._.db.shop`, ALPNProtocols: ['remora-tcp'], rejectUnauthorized: false })
    const r = await new Promise<string>((resolve) => {
      let d = ''
      s.on('secureConnect', () => s.write('GET /config_dump HTTP/1.1\r\nhost: x\r\n\r\n'))
      s.on('data', (c: Buffer) => (d += c.toString()))
      s.on('close', () => resolve(d))
      s.on('error', () => {})
    })
    expect(r).toBe('')
    await until(() => db.logger.lines.some((l) => String((l.obj as { reason?: string }).reason).includes("sidecar's own")), 3000, 'refusal logged')
  })
})

describe('plaintext callers redirected to the inbound listener (PERMISSIVE)', () => {
  test('HTTP goes to the app port the caller dialled (a second port, no annotation)', async () => {
    pending.set(web.inbound, { address: '127.0.0.1', port: webB, family: 4 })
    const r = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: web.inbound, path: '/', headers: { host: 'web.shop' }, agent: false }, (res) => {
        let d = ''
        res.on('data', (c: Buffer) => (d += c.toString()))
        res.on('end', () => resolve(d))
      }).on('error', reject)
    })
    expect(r).toBe('port-b web.shop')
  })

  test('non-HTTP bytes are TCP, authorized without a principal: the ALLOW policy on the db port denies it', async () => {
    const before = db.accessLog.length
    pending.set(db.inbound, { address: '127.0.0.1', port: dbPort, family: 4 })
    const s = net.connect({ host: '127.0.0.1', port: db.inbound, allowHalfOpen: true })
    await new Promise((r) => s.once('connect', r))
    const r = await exchange(s, '\x00\x00\x00\x08\x04\xd2\x16\x2f')
    expect(r.reply).toBe('')
    await until(() => db.accessLog.length > before, 3000, 'the denial logged')
    expect(db.accessLog.at(-1)).toMatchObject({ protocol: 'TCP', direction: 'inbound', connection_security_policy: 'none', downstream_peer_principal: null, authz_decision: 'DENY', response_flags: 'AZ' })
  })

  test('a plaintext caller redirected from a server-first port is TCP at once, before any byte', async () => {
    pending.set(web.inbound, { address: '127.0.0.1', port: 6379, family: 4 })
    const s = net.connect({ host: '127.0.0.1', port: web.inbound, allowHalfOpen: true })
    await new Promise((r) => s.once('connect', r))
    // nothing listens on 6379 here: the sidecar dials it at once and, refused, closes the caller
    const closed = await new Promise<boolean>((resolve) => {
      s.on('end', () => resolve(true))
      s.on('close', () => resolve(true))
      s.on('error', () => {})
      setTimeout(() => resolve(false), 2000)
    })
    expect(closed).toBe(true)
    await until(() => web.accessLog.some((e) => e.protocol === 'TCP' && e.response_flags === 'UF'), 3000, 'UF line')
  })
})

describe('dual stack', () => {
  test('the outbound listener bound to 127.0.0.1 also takes IPv6 connections on ::1 (where ip6tables redirects them)', async () => {
    pending.set(orders.outbound, { address: VIP, port: 5432, family: 4 })
    const s = net.connect({ host: '::1', port: orders.outbound, allowHalfOpen: true })
    await new Promise((r, j) => s.once('connect', r).once('error', j))
    expect((await exchange(s, 'v6')).reply).toBe('END:V6')
  })
})
