// `remora demo`: a local mesh in one command. A control plane (file store in a temp dir) and three
// small services (frontend → orders → payments), each behind its own sidecar that bootstraps with a
// join token (its key never leaves it), an allowlist applied with `remora apply`, allowed and denied
// calls, a live policy change, and where to look. `--once` runs the scenario and exits 0 when
// everything behaved.
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPairSync, sign } from 'node:crypto'
import { systemClock } from '../../control-plane/ca/index.js'
import { ControlPlane } from '../../control-plane/control-plane.js'
import { writeAdminFile } from '../../control-plane/main.js'
import { FileStore } from '../../control-plane/store/index.js'
import { validateSidecarConfig } from '../../proxy/config/index.js'
import { Sidecar, type Logger } from '../../proxy/sidecar.js'
import { startControlPlaneClient, type ControlPlaneClient } from '../../proxy/xds/index.js'
import { run as removePolicy } from './delete.js'
import { run as applyPolicies } from './apply.js'
import { run as showStatus } from './status.js'
import { run as quarantineCmd } from './quarantine.js'
import { run as graphCmd } from './graph.js'
import { run as suggestCmd } from './suggest.js'
import { callApi } from '../admin-client.js'

const TD = 'cluster.local'
const NS = 'shop'
const SERVICES = ['frontend', 'orders', 'payments'] as const
type Service = (typeof SERVICES)[number]
const id = (sa: string): string => `spiffe://${TD}/ns/${NS}/sa/${sa}`
/** The demo's token issuer: a key made at start, its public half inline in the policy. */
const ISSUER = 'https://issuer.demo.remora.dev'

export const POLICY_YAML = `# The demo mesh's policies. Edit this file while the demo runs and \`remora apply -f\` it: every
# sidecar gets the new snapshot within a second (an invalid edit is refused, nothing applied).
# Mesh-wide: mTLS required between sidecars.
apiVersion: security.remora.dev/v1
kind: PeerAuthentication
metadata: { name: default, namespace: remora-system }
spec: { mtls: { mode: STRICT } }
---
# frontend is the edge: it also takes plaintext from outside the mesh (you, with curl).
apiVersion: security.remora.dev/v1
kind: PeerAuthentication
metadata: { name: frontend-edge, namespace: shop }
spec:
  selector: { matchLabels: { app: frontend } }
  mtls: { mode: PERMISSIVE }
---
# orders accepts calls only from frontend, on behalf of a user of the demo issuer in group "buyers".
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/ns/${NS}/sa/frontend"], requestPrincipals: ["${ISSUER}/*"] } }]
      to: [{ operation: { methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] } }]
      when: [{ key: "request.auth.claims[groups]", values: ["buyers"] }]
---
# orders verifies the end user's token (a bad token: 401 before the app; none: the rule above decides).
apiVersion: security.remora.dev/v1
kind: RequestAuthentication
metadata: { name: orders-jwt, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  jwtRules:
    - issuer: ${ISSUER}
      audiences: [orders]
      jwks: '__DEMO_JWKS__'
---
# payments accepts calls only from orders.
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/ns/${NS}/sa/orders"] } }]
      to: [{ operation: { paths: ["/charge"] } }]
    # payments' gRPC API (a third port): orders may call the Ledger service, nothing else.
    - from: [{ source: { principals: ["${TD}/ns/${NS}/sa/orders"] } }]
      to: [{ operation: { paths: ["/demo.Ledger/*"] } }]
    # payments' ledger is plain TCP on a second port: a rule with HTTP fields never matches a TCP
    # connection, so it gets its own L4 rule (principal and port).
    - from: [{ source: { principals: ["${TD}/ns/${NS}/sa/orders"] } }]
      to: [{ operation: { ports: ["__LEDGER_PORT__"] } }]
`

/** The live change: frontend may call payments directly too (applied, shown, then deleted again). */
export const LIVE_CHANGE_YAML = `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TD}/ns/${NS}/sa/frontend"] } }]
      to: [{ operation: { paths: ["/charge"] } }]
`

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function call(port: number, host: string, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { host, ...headers }, agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

// Apps pass the trace context of the request they serve on to the calls they make (as in any Istio
// mesh), so one call through the demo is one trace in Jaeger.
const TRACE_HEADERS = ['traceparent', 'tracestate']
/** A gRPC service without a .proto: JSON in Buffers, as a demo needs nothing more. */
const LEDGER_SERVICE: grpc.ServiceDefinition = {
  Balance: {
    path: '/demo.Ledger/Balance',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
}

/** One unary call to 127.0.0.1:port (h2c: the sidecar's local port), its status and reply. */
function grpcCall(port: number, account: string): Promise<{ code: number; details: string; reply: string }> {
  const Client = grpc.makeGenericClientConstructor(LEDGER_SERVICE, 'Ledger')
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 5000)
    ;(client as unknown as { Balance: (req: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void }).Balance(Buffer.from(JSON.stringify({ account })), new grpc.Metadata(), { deadline }, (err, res) => {
      client.close()
      resolve(err ? { code: err.code, details: err.details, reply: '' } : { code: 0, details: '', reply: res!.toString() })
    })
  })
}

/** One line over TCP: what came back before the other side closed or 2 s passed ('' when closed at once). */
function tcpCall(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    let got = ''
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(`${line}\n`))
    const t = setTimeout(() => s.destroy(), 2000)
    s.on('data', (c: Buffer) => {
      got += c.toString()
      if (got.includes('\n')) s.destroy()
    })
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(t)
      resolve(got)
    })
  })
}

function traceHeadersOf(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const h of TRACE_HEADERS) if (typeof req.headers[h] === 'string') out[h] = req.headers[h]
  return out
}

/** `--jaeger http://host:4318` (OTLP) → the Jaeger UI on the same host, :16686. */
function jaegerUiFor(otlp: string): string {
  const u = new URL(otlp)
  return `${u.protocol}//${u.hostname}:16686`
}

function callerOf(req: http.IncomingMessage): string {
  const xfcc = String(req.headers['x-forwarded-client-cert'] ?? '')
  return /URI=([^;,]+)/.exec(xfcc)?.[1] ?? '(plaintext, no identity)'
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return (server.address() as AddressInfo).port
}

const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error: (o, m) => console.error('sidecar error:', m, JSON.stringify(o)) }

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { once: { type: 'boolean' }, jaeger: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help) {
    console.log(
      'usage: remora demo [--once] [--jaeger http://localhost:4318]\n\nStarts a local mesh (frontend → orders → payments, each with a sidecar), sends allowed and denied\ncalls and prints where to look. --once: run the scenario, exit 0 if everything behaved.\n--jaeger URL: export every span over OTLP/HTTP to a running Jaeger (its UI is taken to be on :16686).',
    )
    return 0
  }
  let jaeger: { endpoint: string; ui: string } | null = null
  if (values.jaeger) {
    try {
      jaeger = { endpoint: values.jaeger, ui: jaegerUiFor(values.jaeger) }
    } catch {
      console.error(`remora demo: --jaeger expects a URL like http://localhost:4318, got "${values.jaeger}"`)
      return 2
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'remora-demo-'))
  const policyFile = join(dir, 'policies.yaml')
  // The demo issuer: tokens for a buyer, a user without the group, and a tampered buyer token.
  const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = { ...issuerKey.publicKey.export({ format: 'jwk' }), kid: 'demo-1', alg: 'ES256', use: 'sig' }
  const mint = (groups: string[]): string => {
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    const input = `${b64({ alg: 'ES256', kid: 'demo-1', typ: 'JWT' })}.${b64({ iss: ISSUER, sub: 'alice', aud: 'orders', groups, iat: now, exp: now + 3600 })}`
    return `${input}.${sign('sha256', Buffer.from(input), { key: issuerKey.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
  }
  const buyer = mint(['buyers'])
  const viewer = mint(['viewers'])
  const [bh, , bs] = buyer.split('.')
  const tampered = `${bh}.${Buffer.from(JSON.stringify({ iss: ISSUER, sub: 'mallory', aud: 'orders', groups: ['buyers'], exp: 4102444800 })).toString('base64url')}.${bs}`
  const tokenFile = (name: string): string => join(dir, `${name}.jwt`)
  for (const [name, t] of [['buyer', buyer], ['viewer', viewer], ['tampered', tampered]] as const) await writeFile(tokenFile(name), t, { mode: 0o600 })
  // payments' second port: a line-based TCP "ledger", reached over the mesh through a local bind port.
  const ledger = net.createServer((s) => {
    s.on('error', () => s.destroy())
    s.on('data', (c: Buffer) => s.write(`OK ${c.toString().trim()} balance=42\n`))
  })
  const ledgerPort = await new Promise<number>((r) => ledger.listen(0, '127.0.0.1', () => r((ledger.address() as AddressInfo).port)))
  // payments' third port: a gRPC service (grpc-js, h2c), reached the same way.
  const grpcServer = new grpc.Server()
  grpcServer.addService(LEDGER_SERVICE, {
    Balance: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const { account } = JSON.parse(call.request.toString()) as { account: string }
      if (account !== 'alice') return cb({ code: grpc.status.NOT_FOUND, details: `no account ${account}` })
      cb(null, Buffer.from(JSON.stringify({ account, balance: 42 })))
    },
  })
  const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))))
  await writeFile(policyFile, POLICY_YAML.replace('__DEMO_JWKS__', JSON.stringify({ keys: [jwk] })).replace('__LEDGER_PORT__', String(ledgerPort)))
  const accessLogFile = join(dir, 'access.log')
  const accessOut = createWriteStream(accessLogFile, { flags: 'a' })

  // The control plane: CA, join tokens, the policy store (a directory) and the snapshot stream.
  const store = await FileStore.open(join(dir, 'store'))
  const cp = await ControlPlane.start({ store, listen: { host: '127.0.0.1', port: 0 } }, { clock: systemClock, logger: quietLogger })
  const adminFile = join(dir, 'admin.json')
  const caFile = join(dir, 'control-plane-ca.pem')
  // The admin token goes only into the 0600 admin file (as `remora control-plane` does), never to the screen.
  await writeAdminFile(adminFile, { server: `https://${cp.address}`, token: cp.adminTokenCreated!, caPem: cp.caPem, identity: cp.identity })
  await writeFile(caFile, cp.caPem)
  const admin = ['--server', `https://${cp.address}`, '--token', cp.adminTokenCreated!, '--ca', caFile]
  console.log(`remora demo: control plane on https://${cp.address} (file store ${join(dir, 'store')})\n`)
  console.log(`$ remora apply -f ${policyFile}`)
  if ((await applyPolicies(['-f', policyFile, ...admin])) !== 0) {
    await cp.close()
    await store.close()
    return 1
  }
  const outboundPort: Partial<Record<Service, number>> = {}

  // The three apps. Each calls the next through its own sidecar's outbound listener by Host.
  const apps: Record<Service, http.Server> = {
    payments: http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ service: 'payments', sawCaller: callerOf(req), path: req.url }))
    }),
    orders: http.createServer((req, res) => {
      call(outboundPort.orders!, 'payments.shop', '/charge', 'POST', traceHeadersOf(req)).then(
        (p) => {
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify({ service: 'orders', sawCaller: callerOf(req), payments: p.status === 200 ? JSON.parse(p.body) : { status: p.status, body: p.body.trim() } }))
        },
        (e: Error) => res.writeHead(502).end(e.message),
      )
    }),
    frontend: http.createServer((req, res) => {
      const target = req.url === '/pay' ? { host: 'payments.shop', path: '/charge' } : { host: 'orders.shop', path: '/orders' }
      // The end user's token travels with the call (orders' sidecar verifies it and strips it).
      const auth = req.headers.authorization
      call(outboundPort.frontend!, target.host, target.path, 'POST', { ...traceHeadersOf(req), ...(auth ? { authorization: auth } : {}) }).then(
        (r) => {
          res.writeHead(r.status, { 'content-type': 'application/json' })
          const denied = r.headers['x-remora-denied-by']
          res.end(JSON.stringify({ service: 'frontend', called: target.host, status: r.status, ...(r.status === 200 ? { reply: JSON.parse(r.body) } : { body: r.body.trim(), deniedBy: denied ?? null }) }))
        },
        (e: Error) => res.writeHead(502).end(e.message),
      )
    }),
  }
  const appPorts = {} as Record<Service, number>
  for (const s of SERVICES) appPorts[s] = await listen(apps[s])

  // Sidecars: each starts with no identity and no config (503 NC, /ready false) and bootstraps
  // from the control plane with a one-identity join token read from a 0600 file, as `remora proxy`
  // does; clusters come from the others' registrations.
  const sidecars = {} as Record<Service, Sidecar>
  const clients = {} as Record<Service, ControlPlaneClient>
  for (const s of ['payments', 'orders', 'frontend'] as const) {
    const joinToken = join(dir, `${s}.join-token`)
    await writeFile(joinToken, (await cp.createJoinToken(NS, s, 10 * 60_000)).token, { mode: 0o600 })
    const v = validateSidecarConfig({
      apiVersion: 'remora.dev/v1',
      kind: 'SidecarConfig',
      trustDomain: TD,
      workload: { namespace: NS, serviceAccount: s, labels: { app: s } },
      controlPlane: { addresses: [cp.address], caFile, tokenFile: joinToken, stateDir: join(dir, `${s}-state`) },
      inbound: { port: 0, bind: '127.0.0.1', app: `127.0.0.1:${appPorts[s]}` },
      // orders and frontend reach payments' ledger (TCP) through a local port of their sidecar.
      outbound: { port: 0, bind: '127.0.0.1', ...(s === 'payments' ? {} : { listeners: [{ port: 0, cluster: 'payments.shop', targetPort: ledgerPort }, { port: 0, cluster: 'payments.shop', targetPort: grpcPort }] }) },
      admin: { port: 0, bind: '127.0.0.1' },
      // the traffic record reaches the control plane every half second (default 10 s), so the graph is filled at once
      telemetry: { metrics: { port: 0, bind: '127.0.0.1' }, trafficReport: { interval: '500ms' }, ...(jaeger ? { tracing: { endpoint: jaeger.endpoint, sampling: 1, jaegerUi: jaeger.ui } } : {}) },
    })
    if (!v.ok) throw new Error(`demo config invalid: ${JSON.stringify(v.issues)}`)
    const sc = await Sidecar.start({ config: v.config, credentials: null, policies: [] }, { clock: systemClock, logger: quietLogger, accessLog: (e) => accessOut.write(JSON.stringify({ sidecar: s, ...e }) + '\n') })
    sidecars[s] = sc
    outboundPort[s] = sc.ports.outbound
    clients[s] = await startControlPlaneClient(sc, v.config, dir, { clock: systemClock, logger: quietLogger })
  }
  /** Until every connected sidecar ACKed `version` (the control plane's status, as `remora status` shows it). */
  const ackedByAll = async (version: string | null): Promise<number> => {
    const t0 = Date.now()
    for (;;) {
      const st = await cp.status()
      const connected = st.sidecars.filter((x) => x.connected)
      const want = version ?? st.version
      if (connected.length === SERVICES.length && connected.every((x) => x.versionAcked === want)) return Date.now() - t0
      if (Date.now() - t0 > 15_000) throw new Error(`version ${want} not ACKed by every sidecar within 15 s`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  // Discovery settles when every sidecar ACKed the snapshot that holds all three registrations.
  for (;;) {
    await ackedByAll(null)
    if (SERVICES.every((s) => (sidecars[s].configDump() as { clusters: unknown[] }).clusters.length === SERVICES.length)) break
    await new Promise((r) => setTimeout(r, 20))
  }
  for (const s of SERVICES) {
    const c = clients[s].certificate!
    console.log(`[${s}] bootstrapped with a join token: certificate for ${id(s)} until ${c.notAfter.toISOString()}, version ${clients[s].lastGoodVersion} ACKed`)
  }
  console.log('')

  const fe = sidecars.frontend.ports.inbound
  console.log(`remora demo: a mesh of three services, each with its sidecar (mTLS, SPIFFE identities, an allowlist)

  frontend  ${id('frontend')}  sidecar inbound :${fe} (PERMISSIVE: the edge), outbound :${outboundPort.frontend}, admin :${sidecars.frontend.ports.admin}
  orders    ${id('orders')}    sidecar inbound :${sidecars.orders.ports.inbound} (STRICT), outbound :${outboundPort.orders}, admin :${sidecars.orders.ports.admin}
  payments  ${id('payments')}  sidecar inbound :${sidecars.payments.ports.inbound} (STRICT), admin :${sidecars.payments.ports.admin}

  allowlist: frontend → orders (for end users in group "buyers", JWT from ${ISSUER}), orders → payments (everything else denied)
`)
  let ok = true
  const expectStatus = (what: string, r: Reply, want: number): void => {
    const good = r.status === want
    ok &&= good
    console.log(`${good ? '✔' : '✘'} ${what}: HTTP ${r.status}${good ? '' : ` (expected ${want})`}`)
  }

  const chain = await call(fe, 'frontend.shop', '/', 'GET', { authorization: `Bearer ${buyer}` })
  expectStatus('you → frontend → orders → payments', chain, 200)
  if (chain.status === 200) {
    const j = JSON.parse(chain.body) as { reply: { sawCaller: string; payments: { sawCaller: string } } }
    console.log(`    orders saw caller   ${j.reply.sawCaller}`)
    console.log(`    payments saw caller ${j.reply.payments.sawCaller}`)
  }
  const noGroup = await call(fe, 'frontend.shop', '/', 'GET', { authorization: `Bearer ${viewer}` })
  expectStatus('you (a valid token, not in "buyers") → frontend → orders', noGroup, 403)
  const forged = await call(fe, 'frontend.shop', '/', 'GET', { authorization: `Bearer ${tampered}` })
  expectStatus('you (a tampered token) → frontend → orders', forged, 401)
  if (forged.status === 401) console.log(`    orders' sidecar answered "${(JSON.parse(forged.body) as { body: string }).body}" (the app never saw the request)`)
  const denied = await call(fe, 'frontend.shop', '/pay')
  expectStatus('you → frontend → payments (not on the allowlist)', denied, 403)
  if (denied.status === 403) {
    const j = JSON.parse(denied.body) as { body: string; deniedBy: string | null }
    console.log(`    payments' sidecar answered "${j.body}", x-remora-denied-by: ${j.deniedBy}`)
    ok &&= j.deniedBy !== null
  }
  const direct = await call(sidecars.payments.ports.inbound, 'payments.shop', '/charge').catch((e: Error) => ({ status: 0, headers: {}, body: e.message }))
  const refused = direct.status === 0
  ok &&= refused
  console.log(`${refused ? '✔' : '✘'} you → payments directly, plaintext (STRICT mTLS): ${refused ? 'connection refused' : `HTTP ${direct.status}`}`)

  // TCP through the mesh: the same identities and allowlist, on connections instead of requests.
  const ledgerOk = await tcpCall(sidecars.orders.listenerPorts[0]!, 'BALANCE alice')
  ok &&= ledgerOk.startsWith('OK BALANCE alice')
  console.log(`${ledgerOk.startsWith('OK') ? '✔' : '✘'} orders → payments' ledger, TCP through orders' sidecar :${sidecars.orders.listenerPorts[0]} (mTLS, L4 allow): "${ledgerOk.trim()}"`)
  const ledgerDenied = await tcpCall(sidecars.frontend.listenerPorts[0]!, 'BALANCE alice')
  ok &&= ledgerDenied === ''
  console.log(`${ledgerDenied === '' ? '✔' : '✘'} frontend → payments' ledger, TCP: ${ledgerDenied === '' ? "connection closed by payments' sidecar (L4 deny: not on the allowlist)" : `answered "${ledgerDenied.trim()}"`}`)

  // gRPC through the mesh: h2c to orders' sidecar, HTTP/2 over mTLS between the sidecars, one span
  // and one access-log line per RPC, authorized on :path = /demo.Ledger/Balance.
  const grpcLocal = sidecars.orders.listenerPorts[1]!
  const rpc = (account: string) => grpcCall(grpcLocal, account)
  const okRpc = await rpc('alice')
  ok &&= okRpc.code === 0
  console.log(`${okRpc.code === 0 ? '✔' : '✘'} orders → payments gRPC /demo.Ledger/Balance through orders' sidecar :${grpcLocal} (HTTP/2 over mTLS): ${okRpc.code === 0 ? okRpc.reply : `status ${okRpc.code} ${okRpc.details}`}`)
  const missingRpc = await rpc('mallory')
  const counted = (await sidecars.payments.metrics.scrape()).body.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('grpc_response_status="5"'))
  const notFound = missingRpc.code === grpc.status.NOT_FOUND && counted !== undefined
  ok &&= notFound
  console.log(`${notFound ? '✔' : '✘'} orders → payments gRPC for an unknown account: status ${missingRpc.code} (NOT_FOUND) "${missingRpc.details}"${counted ? `, counted by payments' sidecar: istio_requests_total{…grpc_response_status="5"…} ${counted.split(' ').pop()}` : ', but not counted with grpc_response_status="5"'}`)

  // A live policy change through the control plane: allow frontend → payments, then take it back.
  const liveFile = join(dir, 'payments-allow-frontend.yaml')
  await writeFile(liveFile, LIVE_CHANGE_YAML)
  console.log(`\nLive policy change: let frontend call payments directly.\n$ remora apply -f ${liveFile}`)
  ok &&= (await applyPolicies(['-f', liveFile, ...admin])) === 0
  console.log(`  version ${cp.version} ACKed by all ${SERVICES.length} sidecars ${await ackedByAll(cp.version)} ms after the apply returned`)
  expectStatus('you → frontend → payments (allowed now)', await call(fe, 'frontend.shop', '/pay'), 200)
  console.log('$ remora delete authorizationpolicy payments-allow-frontend -n shop')
  ok &&= (await removePolicy(['authorizationpolicy', 'payments-allow-frontend', '-n', NS, ...admin])) === 0
  console.log(`  version ${cp.version} ACKed by all ${SERVICES.length} sidecars ${await ackedByAll(cp.version)} ms after the delete returned`)
  expectStatus('you → frontend → payments (reverted: denied again)', await call(fe, 'frontend.shop', '/pay'), 403)
  // See the mesh, and shrink it: what every sidecar recorded (verified callers, decisions, rules),
  // as a graph and as least-privilege policies.
  const target = { server: `https://${cp.address}`, token: cp.adminTokenCreated!, caPem: cp.caPem, identity: cp.identity }
  for (let i = 0; i < 50; i++) {
    const t = await callApi(target, 'GET', '/v1/traffic?namespace=shop&since=1h')
    const edges = (t.json.edges as { destination: { workload: string }; protocol: string }[] | undefined) ?? []
    if (['orders', 'payments'].every((w) => edges.some((e) => e.destination.workload === w)) && edges.some((e) => e.protocol === 'grpc')) break
    await new Promise((r) => setTimeout(r, 100))
  }
  console.log(`\nSee the mesh (web view: https://${cp.address}/ui/ — paste the admin token from ${adminFile}):\n$ remora graph -n shop`)
  ok &&= (await graphCmd(['-n', 'shop', '--since', '1h', ...admin])) === 0
  console.log('$ remora suggest -n shop --for payments   # the least-privilege policy for what payments was observed serving')
  // suggest writes its comparison with the policies in force to stderr (the YAML alone on stdout); the demo shows both in order
  const toStderr = console.error
  console.error = console.log
  try {
    ok &&= (await suggestCmd(['-n', 'shop', '--for', 'payments', '--since', '1h', ...admin])) === 0
  } finally {
    console.error = toStderr
  }

  // Incident response: cut frontend off the mesh, both ways, in one command; then release it.
  console.log(`\nIncident: frontend's credentials leaked. Cut it off everywhere, now.\n$ remora quarantine ${id('frontend')} --reason 'demo: leaked credentials'`)
  ok &&= (await quarantineCmd([id('frontend'), '--reason', 'demo: leaked credentials', '--by', 'demo', ...admin])) === 0
  const cut = await call(fe, 'frontend.shop', '/', 'GET', { authorization: `Bearer ${buyer}` })
  expectStatus('you → frontend (quarantined: its own sidecar refuses every call, in and out)', cut, 403)
  const ledgerCut = await tcpCall(sidecars.frontend.listenerPorts[0]!, 'BALANCE alice')
  ok &&= ledgerCut === ''
  console.log(`${ledgerCut === '' ? '✔' : '✘'} frontend → payments' ledger, TCP: ${ledgerCut === '' ? 'refused (quarantined)' : `answered "${ledgerCut.trim()}"`}`)
  console.log('$ remora status   # shows the quarantine, who did it and why')
  ok &&= (await showStatus(admin)) === 0
  console.log(`$ remora release ${id('frontend')}`)
  ok &&= (await quarantineCmd([id('frontend'), '--by', 'demo', ...admin], 'release')) === 0
  expectStatus('you → frontend → orders → payments (released)', await call(fe, 'frontend.shop', '/', 'GET', { authorization: `Bearer ${buyer}` }), 200)

  console.log(`
Where to look:
  access log (one JSON line per request, both directions):  tail -f ${accessLogFile}
  the policies (edit, then apply; invalid edits are refused): ${policyFile}
  the control plane (admin token in a 0600 file):  export REMORA_CONFIG=${adminFile}
    npx remora status | npx remora get ap -n shop | npx remora apply -f ${policyFile}
  sidecar admin: curl -s localhost:${sidecars.payments.ports.admin}/config_dump | /certs | /clusters | /ready
  metrics (Prometheus text, Istio's names): ${SERVICES.map((s) => `${s} localhost:${sidecars[s].ports.metrics}/stats/prometheus`).join(', ')}
    curl -s localhost:${sidecars.payments.ports.admin}/metrics | grep istio_requests_total
  traces: ${
    jaeger
      ? `exported to ${jaeger.endpoint} (every request sampled); open ${jaeger.ui}/search?service=frontend\n    a denied call's access log line has its trace_link; mesh callers also get it in x-remora-trace`
      : `off; run a Jaeger (docker run -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one) and\n    remora demo --jaeger http://localhost:4318   (trace_id is in every access log line meanwhile)`
  }

Try:
  curl -s localhost:${fe}/ -H 'host: frontend.shop' -H "authorization: Bearer $(cat ${tokenFile('buyer')})"   # allowed chain
  curl -s localhost:${fe}/ -H 'host: frontend.shop' -H "authorization: Bearer $(cat ${tokenFile('viewer')})"  # 403: not a buyer
  curl -s localhost:${fe}/ -H 'host: frontend.shop' -H "authorization: Bearer $(cat ${tokenFile('tampered')})"  # 401: tampered
  curl -s localhost:${fe}/pay -H 'host: frontend.shop'     # denied by payments' allowlist
  npx remora check -f ${policyFile} --dest-namespace shop --dest-labels app=payments \\
      --source-principal ${id('frontend')} --method POST --path /charge
`)

  const shutdown = async (): Promise<void> => {
    for (const s of SERVICES) await clients[s].close()
    for (const s of SERVICES) await sidecars[s].close()
    for (const s of SERVICES) apps[s].close()
    ledger.close()
    grpcServer.forceShutdown()
    await cp.close()
    await store.close()
    await new Promise<void>((r) => accessOut.end(r))
    // The directory holds the demo CA's key and the tokens: nothing of it outlives the demo.
    await rm(dir, { recursive: true, force: true })
  }
  if (values.once) {
    await shutdown()
    console.log(ok ? 'demo: everything behaved.' : 'demo: something did not behave (see ✘ above).')
    return ok ? 0 : 1
  }
  console.log(`The mesh keeps running; Ctrl-C stops it and removes ${dir}.`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await shutdown()
  return 0
}
