// In-process sidecars for integration tests: real listeners on port 0, real TLS from the test PKI,
// access log lines captured in memory.
import https from 'node:https'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { validateDocuments, type PolicyDocument } from '../../proxy/policy/index.js'
import { validateSidecarConfig, type SidecarConfigInput } from '../../proxy/config/index.js'
import { buildCredentials } from '../../proxy/tls/index.js'
import { Sidecar, type Logger, type SidecarJwtOptions } from '../../proxy/sidecar.js'
import type { AccessLogEntry } from '../../proxy/stages/index.js'
import type { OriginalDst } from '../../proxy/pipeline/index.js'
import type { OtelEnv } from '../../proxy/telemetry/index.js'
import type { Leaf, TestPki } from './pki.js'

export interface LogLine {
  level: string
  obj: object
  msg?: string
}

export function captureLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = []
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg })
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

export interface TestSidecar {
  sidecar: Sidecar
  inbound: number
  outbound: number
  admin: number
  spiffeId: string
  leaf: Leaf
  accessLog: AccessLogEntry[]
  logger: ReturnType<typeof captureLogger>
  close(): Promise<void>
}

/** The forwarding engine integration tests run against: REMORA_TEST_ENGINE=raw|node-http (default: the product default). */
export const TEST_ENGINE = process.env.REMORA_TEST_ENGINE === 'raw' || process.env.REMORA_TEST_ENGINE === 'node-http' ? process.env.REMORA_TEST_ENGINE : undefined

export interface StartSidecarOptions {
  /** Overrides REMORA_TEST_ENGINE for this sidecar. */
  engine?: 'raw' | 'node-http'
  pki: TestPki
  namespace?: string
  serviceAccount: string
  labels?: Record<string, string>
  app: string
  clusters?: SidecarConfigInput['clusters']
  policies?: string // YAML text
  extra?: Partial<SidecarConfigInput>
  /** OTEL_* variables as the sidecar would see them. */
  otelEnv?: OtelEnv
  /** The sidecar's clock (JWT exp/nbf, JWKS cooldown); default the system clock. */
  clock?: { now(): number }
  /** JWT options: leeway, token cache, JWKS registry, result hooks. */
  jwt?: SidecarJwtOptions
  /** Stands in for SO_ORIGINAL_DST (tests without iptables): a connection's original destination, or null. */
  originalDst?: (socket: net.Socket) => OriginalDst | null
}

export function policiesFromYaml(text: string, trustDomain = 'cluster.local'): PolicyDocument[] {
  const r = validateDocuments([{ source: 'test.yaml', text }], { trustDomains: [trustDomain] })
  if (r.errors.length) throw new Error(`test policies invalid: ${JSON.stringify(r.errors)}`)
  return r.policies
}

export async function startSidecar(o: StartSidecarOptions): Promise<TestSidecar> {
  const ns = o.namespace ?? 'shop'
  const spiffeId = `spiffe://${o.pki.trustDomain}/ns/${ns}/sa/${o.serviceAccount}`
  const leaf = await o.pki.issue(spiffeId)
  const input: SidecarConfigInput = {
    apiVersion: 'remora.dev/v1',
    kind: 'SidecarConfig',
    trustDomain: o.pki.trustDomain,
    workload: { namespace: ns, serviceAccount: o.serviceAccount, labels: o.labels ?? { app: o.serviceAccount } },
    identity: { certFile: 'mem', keyFile: 'mem', caFile: 'mem' },
    inbound: { port: 0, bind: '127.0.0.1', app: o.app },
    outbound: { port: 0, bind: '127.0.0.1' },
    admin: { port: 0, bind: '127.0.0.1' },
    clusters: o.clusters ?? [],
    // Istio's scrape port, on loopback and port 0 (several sidecars per test process).
    telemetry: { metrics: { port: 0, bind: '127.0.0.1' } },
    ...((o.engine ?? TEST_ENGINE) !== undefined ? { engine: o.engine ?? TEST_ENGINE } : {}),
    ...o.extra,
  }
  const v = validateSidecarConfig(input)
  if (!v.ok) throw new Error(`test sidecar config invalid: ${JSON.stringify(v.issues)}`)
  const credentials = buildCredentials({ certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: o.pki.caPem }, o.pki.trustDomain, Date.now())
  const accessLog: AccessLogEntry[] = []
  const logger = captureLogger()
  const sidecar = await Sidecar.start(
    { config: v.config, credentials, policies: o.policies ? policiesFromYaml(o.policies, o.pki.trustDomain) : [] },
    { clock: o.clock ?? { now: () => Date.now() }, logger, accessLog: (e) => accessLog.push(e), otelEnv: o.otelEnv, jwt: o.jwt, ...(o.originalDst ? { originalDst: o.originalDst } : {}) },
  )
  return { sidecar, ...sidecar.ports, spiffeId, leaf, accessLog, logger, close: () => sidecar.close() }
}

/** orders' route to payments: host `payments`, payments' inbound listener, secure naming on payments' SPIFFE ID. */
export function paymentsCluster(payments: TestSidecar): NonNullable<SidecarConfigInput['clusters']>[number] {
  return { name: 'payments.shop', hosts: ['payments'], endpoints: [`127.0.0.1:${payments.inbound}`], identities: [payments.spiffeId] }
}

/**
 * The pair most data-path tests use: payments (inbound, in front of `app`, with `policies`) and
 * orders (outbound only, routing host `payments` to payments over mTLS). `extra` goes to both.
 */
export async function startPair(o: { pki: TestPki; app: string; engine?: 'raw' | 'node-http'; policies?: string; extra?: Partial<SidecarConfigInput> }): Promise<{ payments: TestSidecar; orders: TestSidecar; close(): Promise<void> }> {
  const payments = await startSidecar({ engine: o.engine, pki: o.pki, serviceAccount: 'payments', app: o.app, policies: o.policies, extra: o.extra })
  const orders = await startSidecar({ engine: o.engine, pki: o.pki, serviceAccount: 'orders', app: '127.0.0.1:1', extra: o.extra, clusters: [paymentsCluster(payments)] })
  return {
    payments,
    orders,
    close: async () => {
      await orders.close()
      await payments.close()
    },
  }
}

export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

export interface RequestOptions {
  method?: string
  path?: string
  headers?: http.OutgoingHttpHeaders
  body?: string | Buffer
  host?: string
}

/** Plain HTTP to a port (the outbound listener, or PERMISSIVE inbound). Fresh connection each time. */
export function plainRequest(port: number, o: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: o.headers, agent: false, setHost: !o.headers?.host }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

export type MtlsOutcome = { refused: true; error: string } | ({ refused: false } & Reply)

/**
 * A mesh peer calling an inbound listener directly with its own client certificate. TLS 1.3
 * reports a refused client certificate as a close after `secureConnect`: that counts as refused.
 */
export function mtlsRequest(port: number, client: Leaf | null, caPem: string, o: RequestOptions & { tls?: tls.ConnectionOptions } = {}): Promise<MtlsOutcome> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: o.method ?? 'GET',
        path: o.path ?? '/',
        headers: o.headers,
        agent: false,
        ca: caPem,
        cert: client?.certPem,
        key: client?.keyPem,
        checkServerIdentity: () => undefined,
        minVersion: 'TLSv1.2',
        ...o.tls,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ refused: false, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
        res.on('error', (e) => resolve({ refused: true, error: (e as NodeJS.ErrnoException).code ?? e.message }))
      },
    )
    req.on('error', (e) => resolve({ refused: true, error: (e as NodeJS.ErrnoException).code ?? e.message }))
    req.end(o.body)
  })
}

/** Writes raw bytes to a port and returns everything read until the server closes (or 2 s). */
export function rawExchange(port: number, data: string, opts: { tls?: tls.ConnectionOptions; waitMs?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const sock: net.Socket = opts.tls ? tls.connect({ host: '127.0.0.1', port, ...opts.tls }) : net.connect(port, '127.0.0.1')
    let out = ''
    sock.once(opts.tls ? 'secureConnect' : 'connect', () => sock.write(data))
    sock.on('data', (c: Buffer) => (out += c.toString('latin1')))
    const done = (): void => {
      clearTimeout(t)
      resolve(out)
    }
    const t = setTimeout(() => {
      sock.destroy()
      resolve(out)
    }, opts.waitMs ?? 2000)
    sock.on('close', done)
    sock.on('error', () => {})
  })
}

/** Waits until `pred` holds, polling an in-memory value (never a fixed sleep for correctness). */
export async function until(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
