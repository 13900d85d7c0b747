// The contenders: each one sets up the two-hop topology on loopback,
//   client → outbound proxy → mTLS (TLS 1.3, client certs, SPIFFE URI SANs) → inbound proxy → app
// (or client → app for `direct`), one process with one worker per proxy.
import { mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { APP_ID, CLIENT_ID, TRUST_DOMAIN, type BenchPki } from './pki.js'
import { freePort, processTree, start, stop, waitForPort, type Proc } from './proc.js'

export const HOST = 'app.bench'
export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))

export interface BenchEnv {
  readonly pki: BenchPki
  readonly appPort: number
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
// The app: nginx serving two static files. The lightest server available here, so the proxies'
// cost dominates what is measured; the same instance serves every contender.

export async function startApp(nginx: string, dir: string): Promise<{ port: number; proc: Proc; stop(): Promise<void> }> {
  const www = join(dir, 'www')
  mkdirSync(www, { recursive: true })
  writeFileSync(join(www, '1k'), Buffer.alloc(1024, 'a'))
  writeFileSync(join(www, '1m'), Buffer.alloc(1024 * 1024, 'b'))
  const port = await freePort()
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
}
`,
  )
  const proc = start('app (nginx)', nginx, nginxArgs(dir, 'app', conf))
  await waitForPort(port, [proc])
  return { port, proc, stop: () => stop(proc) }
}

function nginxMain(dir: string, name: string): string {
  return `worker_processes 1;
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
    return { entryPort: env.appPort, mtlsPort: null, roles: [], procs: [], stop: async () => {} }
  },
}

export const nginxPair: Contender = {
  name: 'nginx',
  describe: 'Debian nginx, one worker per proxy; outbound: upstream keepalive 64, `proxy_ssl_certificate` (client cert), TLS 1.3, `proxy_buffering off`; inbound: `ssl_verify_client on` against the bench CA; access log to a buffered file',
  needs: ['nginx'],
  async start(env) {
    const [outPort, inPort] = [await freePort(), await freePort()]
    const { pki, dir } = env
    const outConf = join(dir, 'nginx-out.conf')
    const inConf = join(dir, 'nginx-in.conf')
    // nginx can check a server name only against DNS SANs or the CN; our workload certificates carry
    // only a SPIFFE URI SAN, so the outbound side cannot do secure naming (nor, with
    // proxy_ssl_verify on, connect at all). It verifies nothing about the server: say so in the report.
    writeFileSync(
      outConf,
      `${nginxMain(dir, 'nginx-out')}
http {
  ${nginxHttpCommon(dir, 'nginx-out')}
  access_log ${join(dir, 'nginx-out-access.log')} combined buffer=64k flush=1s;
  upstream inbound {
    server 127.0.0.1:${inPort};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
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
}
`,
    )
    writeFileSync(
      inConf,
      `${nginxMain(dir, 'nginx-in')}
http {
  ${nginxHttpCommon(dir, 'nginx-in')}
  access_log ${join(dir, 'nginx-in-access.log')} combined buffer=64k flush=1s;
  upstream app {
    server 127.0.0.1:${env.appPort};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
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
      proxy_set_header X-Forwarded-Client-Cert "Hash=$ssl_client_fingerprint;Subject=\\"$ssl_client_s_dn\\"";
      proxy_buffering off;
    }
  }
}
`,
    )
    const pin = start('nginx inbound', env.bins.nginx!, nginxArgs(dir, 'nginx-in', inConf))
    const pout = start('nginx outbound', env.bins.nginx!, nginxArgs(dir, 'nginx-out', outConf))
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
  describe: 'Debian haproxy, `nbthread 1`; outbound: `ssl crt` (client cert) `verify required ca-file`, TLS 1.3, connection reuse; inbound: `verify required` against the bench CA; no logging (haproxy logs only to syslog)',
  needs: ['haproxy'],
  async start(env) {
    const [outPort, inPort] = [await freePort(), await freePort()]
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
    // haproxy verifies the server's chain; without `verifyhost` it checks no name (it has no
    // URI SAN matcher), so, like nginx, it does no secure naming.
    writeFileSync(
      outCfg,
      `${global}
frontend outbound
  bind 127.0.0.1:${outPort}
  default_backend inbound
backend inbound
  server in1 127.0.0.1:${inPort} ssl crt ${pki.client.bundle} ca-file ${pki.ca} verify required ssl-min-ver TLSv1.3 alpn http/1.1
`,
    )
    writeFileSync(
      inCfg,
      `${global}
frontend inbound
  bind 127.0.0.1:${inPort} ssl crt ${pki.app.bundle} ca-file ${pki.ca} verify required ssl-min-ver TLSv1.3 alpn http/1.1
  default_backend app
backend app
  server app1 127.0.0.1:${env.appPort}
`,
    )
    const pin = start('haproxy inbound', env.bins.haproxy!, ['-f', inCfg, '-db'])
    const pout = start('haproxy outbound', env.bins.haproxy!, ['-f', outCfg, '-db'])
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
      roles: [
        { role: 'outbound', pids: [pout.pid] },
        { role: 'inbound', pids: [pin.pid] },
      ],
      procs,
      stop: () => stopAll(procs),
    }
  },
}

/** 10 AuthorizationPolicies for the inbound workload; only the last one allows the bench client. */
export function benchPolicies(): string {
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
      to: [{ operation: { methods: ["GET"], paths: ["/1k", "/1m"] } }]`)
  return docs.join('\n---\n') + '\n'
}

/** A remora pair; `engine` is passed through as `--engine <name>` when set. */
export function remoraPair(engine: string | null): Contender {
  return {
    name: engine ? `remora[${engine}]` : 'remora',
    describe: `two \`remora proxy\` processes from dist/ (${engine ? `\`--engine ${engine}\`` : 'default engine'}), STRICT mTLS, secure naming on the outbound side, authz with 10 AuthorizationPolicies (the request is allowed by the last), JSON access log to a file (the default)`,
    needs: [],
    async start(env) {
      const [outPort, inPort] = [await freePort(), await freePort()]
      const { pki, dir } = env
      const policyFile = join(dir, 'policies.yaml')
      writeFileSync(policyFile, benchPolicies())
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
outbound: { port: ${isOut ? outPort : 0}, bind: 127.0.0.1 }
admin: { port: 0, bind: 127.0.0.1 }
clusters:
${isOut ? `  - { name: app.bench, hosts: ["${HOST}", "127.0.0.1"], endpoints: ["127.0.0.1:${inPort}"], identities: ["${APP_ID}"] }` : '  []'}
policies: { files: ["${policyFile}"] }
accessLog: { enabled: true, path: ${join(dir, `remora-${role}-access.log`)} }
`,
        )
        return file
      }
      const engineArgs = [...(engine ? ['--engine', engine] : []), ...env.remoraSet.flatMap((x) => ['--set', x])]
      const run = (role: 'outbound' | 'inbound'): Proc =>
        start(`remora ${role}`, process.execPath, [...env.remoraNodeArgs, env.cliJs, 'proxy', '--config', config(role), ...engineArgs], { cwd: dir })
      const pin = run('inbound')
      const pout = run('outbound')
      const procs = [pin, pout]
      try {
        await waitForPort(inPort, procs)
        await waitForPort(outPort, procs)
        // Authz really is on: a path no policy allows is refused by the inbound sidecar.
        await probe(outPort, '/not-allowed', 403)
      } catch (e) {
        await stopAll(procs)
        throw e
      }
      return {
        entryPort: outPort,
        mtlsPort: inPort,
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
