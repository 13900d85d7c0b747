// Interception for real (root): two network namespaces made by this test ("pods" a and b, joined by
// a veth pair with an IPv4 /24 and an IPv6 ULA /64), `remora init-iptables` in each (IPv4 and IPv6,
// every inbound port), a sidecar in each running as UID 1337, and plain apps running as another
// UID. App a dials b's pod IP, or a Service VIP that exists nowhere but in a's cluster config; the
// call goes a's app → REDIRECT → a's sidecar (outbound 15001), which reads the connection's
// original destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST, the native addon) to pick the
// cluster and port → mTLS → b's sidecar (15006) → b's app on the port asked for; neither app knows.
// Only namespace and loopback addresses are used; everything is removed afterwards.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { readyScript } from '../../control-plane/inject/index.js'
import { createTestPki } from '../helpers/pki.js'
import { ROOT } from '../helpers/process.js'

const CLI = join(ROOT, 'cli', 'main.ts')
const TD = 'cluster.local'
const A_ID = `spiffe://${TD}/ns/shop/sa/frontend`
const B_ID = `spiffe://${TD}/ns/shop/sa/orders`
const APP_UID = 4242
const suffix = randomBytes(3).toString('hex')
const NS = { a: `remora-a-${suffix}`, b: `remora-b-${suffix}` }
// A private /24 from a random second octet in 10.200-10.249, and a random ULA /64: no clash with
// parallel runs. The VIPs are on-link but on no interface: only a's sidecar knows them.
const NET4 = `10.${200 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]!}`
// Groups of four hex digits, none zero: written as the kernel prints them, so addresses compare as text.
const group = (): string => (0x1000 + (randomBytes(2).readUInt16BE(0) % 0xf000)).toString(16)
const NET6 = `fd00:${group()}:${group()}:${group()}`
type Family = 4 | 6
const FAMILIES: readonly Family[] = [4, 6]
const IP: Record<Family, { a: string; b: string; vip: string }> = {
  4: { a: `${NET4}.1`, b: `${NET4}.2`, vip: `${NET4}.100` },
  6: { a: `${NET6}::1`, b: `${NET6}::2`, vip: `${NET6}::100` },
}
const PREFIX: Record<Family, number> = { 4: 24, 6: 64 }
const url = (ip: string, port: number, path: string): string => `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}${path}`
const IPTABLES: Record<Family, string> = { 4: 'iptables', 6: 'ip6tables' }

function need(bin: string, pkg: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${bin} is not installed: apt-get install ${pkg} (listed in .ci/packages.txt)`)
}

function sh(cmd: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' })
  if (!opts.allowFail && r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}

/** A command inside a namespace, as a given UID (setpriv), no shell in between. */
const inNs = (ns: string, uid: number | null, cmd: string[]): string[] =>
  ['ip', 'netns', 'exec', ns, ...(uid === null ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups']), ...cmd]

const procs: (ChildProcess & { out: string })[] = []
function start(cmd: string[], cwd = ROOT): ChildProcess & { out: string } {
  const p = spawn(cmd[0]!, cmd.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] }) as ChildProcess & { out: string }
  p.out = ''
  p.stdout!.on('data', (c: Buffer) => (p.out += c.toString()))
  p.stderr!.on('data', (c: Buffer) => (p.out += c.toString()))
  procs.push(p)
  return p
}

function run(cmd: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => (out += c.toString()))
    p.stderr.on('data', (c: Buffer) => (out += c.toString()))
    p.on('close', (code) => resolve({ code: code ?? 1, out }))
  })
}

const APP_PORTS = [8080, 9090] as const
// An app in b (one per port, dual-stack): answers with what it saw (its port, the peer address,
// the XFCC header its sidecar set).
const APP_B = (port: number): string =>
  `require('node:http').createServer((q,r)=>{r.setHeader('content-type','application/json');r.end(JSON.stringify({port:q.socket.localPort,path:q.url,from:q.socket.remoteAddress,xfcc:q.headers['x-forwarded-client-cert']||null}))}).listen(${port},'::',()=>console.log('listening'))`
// The app in a: a plain HTTP GET to an address; it never sets a proxy.
const CALL = (u: string): string =>
  `require('node:http').get(${JSON.stringify(u)},{timeout:5000},(r)=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>{console.log(JSON.stringify({status:r.statusCode,body:b}));process.exit(0)})}).on('error',(e)=>{console.log(JSON.stringify({error:e.code||e.message}));process.exit(0)}).on('timeout',function(){this.destroy(new Error('timeout'))})`

interface Seen {
  port: number
  path: string
  from: string
  xfcc: string | null
}

async function call(fromUid: number, u: string): Promise<{ status?: number; body?: string; error?: string }> {
  const r = await run(inNs(NS.a, fromUid, [process.execPath, '-e', CALL(u)]))
  return JSON.parse(r.out.trim().split('\n').at(-1)!)
}

/** A call from a's app that must have reached one of b's apps: what that app saw. */
async function reach(u: string): Promise<Seen> {
  const r = await call(APP_UID, u)
  expect(r.status, `${u}: ${JSON.stringify(r)}\n${procs.map((p) => p.out.slice(-2000)).join('\n---\n')}`).toBe(200)
  return JSON.parse(r.body!) as Seen
}

const unmapped = (ip: string): string => (ip.startsWith('::ffff:') ? ip.slice(7) : ip)

/** Packet count of the first rule matching `pattern` in a chain of namespace `ns`'s nat table, for one family. */
function counter(ns: string, family: Family, chain: string, pattern: RegExp): number {
  const out = sh(inNs(ns, null, [IPTABLES[family], '-t', 'nat', '-L', chain, '-v', '-n', '-x']))
  const line = out.split('\n').find((l) => pattern.test(l))
  if (!line) throw new Error(`no rule matching ${pattern} in ${chain} (${IPTABLES[family]}):\n${out}`)
  return Number(line.trim().split(/\s+/)[0])
}
const redirected = (family: Family): number => counter(NS.a, family, 'REMORA_REDIRECT', /redir ports 15001/)

let dir: string

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the interception test needs root (network namespaces and iptables): run test:system as root')
  need('ip', 'iproute2')
  for (const bin of ['iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore']) need(bin, 'iptables')
  need('setpriv', 'util-linux')
  sh(['ip', 'netns', 'add', NS.a])
  sh(['ip', 'netns', 'add', NS.b])
  sh(['ip', 'link', 'add', `va-${suffix}`, 'netns', NS.a, 'type', 'veth', 'peer', 'name', `vb-${suffix}`, 'netns', NS.b])
  for (const [name, dev] of [
    ['a', `va-${suffix}`],
    ['b', `vb-${suffix}`],
  ] as const) {
    const ns = NS[name]
    sh(inNs(ns, null, ['ip', 'addr', 'add', `${IP[4][name]}/${PREFIX[4]}`, 'dev', dev]))
    // nodad: usable at once, no duplicate-address detection to wait for on a link of two.
    sh(inNs(ns, null, ['ip', '-6', 'addr', 'add', `${IP[6][name]}/${PREFIX[6]}`, 'dev', dev, 'nodad']))
    sh(inNs(ns, null, ['ip', 'link', 'set', dev, 'up']))
    sh(inNs(ns, null, ['ip', 'link', 'set', 'lo', 'up']))
  }

  // Files the sidecars (UID 1337) can read; keys 0600 owned by 1337.
  dir = mkdtempSync(join(tmpdir(), 'remora-netns-'))
  chmodSync(dir, 0o755)
  const pki = await createTestPki({ trustDomain: TD })
  // Both sidecars listen dual-stack ('::'): ip6tables' REDIRECT sends IPv6 connections to ::1
  // (outbound) and to the pod's IPv6 address (inbound), IPv4 ones arrive IPv4-mapped.
  const dualStack = { inbound: { bind: '::' }, outbound: { bind: '::' } }
  for (const [name, id, cfg] of [
    [
      'a',
      A_ID,
      {
        workload: { namespace: 'shop', serviceAccount: 'frontend', labels: { app: 'frontend' } },
        inbound: { ...dualStack.inbound, app: '127.0.0.1:8081' },
        outbound: dualStack.outbound,
        // No host names the pod IPs or the VIPs: only the original destination leads there. The
        // Service's VIPs and ports (80 → 8080, 9090); b's pod IPs are its endpoints' (both families).
        clusters: [
          {
            name: 'orders.shop',
            hosts: ['orders.shop'],
            addresses: [IP[4].vip, IP[6].vip],
            ports: [
              { port: 80, targetPort: 8080, name: 'http' },
              { port: 9090, name: 'http-admin' },
            ],
            endpoints: [`${IP[4].b}:15006`, `[${IP[6].b}]:15006`],
            identities: [B_ID],
          },
        ],
      },
    ],
    [
      'b',
      B_ID,
      {
        workload: { namespace: 'shop', serviceAccount: 'orders', labels: { app: 'orders' } },
        inbound: { ...dualStack.inbound, app: '127.0.0.1:8080' },
        outbound: dualStack.outbound,
        policies: { files: ['strict.yaml'] },
      },
    ],
  ] as const) {
    const files = await pki.writeFiles(join(dir, name), name, await pki.issue(id))
    chmodSync(join(dir, name), 0o755)
    sh(['chown', '1337:1337', files.keyFile])
    const config = { apiVersion: 'remora.dev/v1', kind: 'SidecarConfig', trustDomain: TD, identity: files, accessLog: { enabled: false }, ...cfg }
    writeFileSync(join(dir, name, 'sidecar.yaml'), JSON.stringify(config, null, 2))
  }
  writeFileSync(
    join(dir, 'b', 'strict.yaml'),
    'apiVersion: security.remora.dev/v1\nkind: PeerAuthentication\nmetadata: { name: default, namespace: shop }\nspec: { mtls: { mode: STRICT } }\n',
  )

  // The init container's job, in each pod: the defaults (every inbound port, IPv4 and IPv6); b
  // names none of its app ports.
  for (const ns of [NS.a, NS.b]) {
    const r = await run(inNs(ns, null, [process.execPath, '--import', 'tsx', CLI, 'init-iptables', '--proxy-uid', '1337']))
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/IPv4 and IPv6/)
  }

  for (const port of APP_PORTS) start(inNs(NS.b, APP_UID, [process.execPath, '-e', APP_B(port)]))
  for (const name of ['a', 'b'] as const) {
    start(inNs(NS[name], 1337, [process.execPath, '--import', 'tsx', CLI, 'proxy', '--config', join(dir, name, 'sidecar.yaml')]))
  }
  for (const name of ['a', 'b'] as const) {
    // As the app's UID: loopback returns before any owner rule, so the UID counter below counts the sidecar alone.
    const ready = await run(inNs(NS[name], APP_UID, [process.execPath, '-e', readyScript(30_000)]))
    if (ready.code !== 0) throw new Error(`sidecar ${name} never became ready:\n${procs.map((p) => p.out).join('\n---\n')}`)
  }
}, 120_000)

afterAll(async () => {
  for (const p of procs) p.kill('SIGTERM')
  await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : null)))
  for (const ns of Object.values(NS)) sh(['ip', 'netns', 'del', ns], { allowFail: true })
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('interception in network namespaces (remora init-iptables)', () => {
  test('init-iptables wrote both families: the same chains in iptables and ip6tables, each with its own loopback', () => {
    for (const ns of [NS.a, NS.b]) {
      const v4 = sh(inNs(ns, null, ['iptables-save', '-t', 'nat']))
      const v6 = sh(inNs(ns, null, ['ip6tables-save', '-t', 'nat']))
      for (const save of [v4, v6]) {
        expect(save).toMatch(/-A PREROUTING -p tcp -j REMORA_INBOUND/)
        expect(save).toMatch(/-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT/)
        expect(save).toMatch(/-A REMORA_INBOUND -p tcp -m tcp --dport 15006 -j RETURN/)
      }
      expect(v4).toMatch(/-A REMORA_OUTPUT -d 127\.0\.0\.0\/8 -j RETURN/)
      expect(v6).toMatch(/-A REMORA_OUTPUT -d ::1\/128 -j RETURN/)
    }
  })

  // KNOWN GAP, in the sidecar (not in interception): HTTP to a pod IP is not routed by its original
  // destination yet. The HTTP routes' byDst (proxy/runtime/compile.ts) holds the clusters' VIPs but
  // not their endpoints' IPs (the L4 table has both), so the request goes to PassthroughCluster,
  // in plaintext, and b's STRICT port refuses it (503). docs/traffic.md promises it, with the port
  // dialled as the workload port. The two pod-IP rows below assert the promised behaviour and are
  // expected to fail until then: once it is routed they fail as `fails` tests, so make them `test`.
  const podIpRow = test.fails

  describe.each(FAMILIES)('IPv%i', (family) => {
    const ip = IP[family]

    podIpRow("(a) a's app dials b's pod IP and reaches b's app through both sidecars over mTLS, routed by its original destination", async () => {
      const before = redirected(family)
      const seen = await reach(url(ip.b, 8080, '/orders/42'))
      expect(seen).toMatchObject({ port: 8080, path: '/orders/42' })
      // b's app was reached by its sidecar over loopback, and that sidecar verified a's certificate.
      expect(unmapped(seen.from)).toBe('127.0.0.1')
      expect(seen.xfcc).toContain(`URI=${A_ID}`)
      // NAT sees the first packet of each connection: the app's connection was redirected once, by this family's rules.
      expect(redirected(family)).toBe(before + 1)
    })

    test("(a) a's app dials the Service VIP (on no interface) on its service port 80: the cluster's targetPort 8080 answers", async () => {
      const before = redirected(family)
      const seen = await reach(url(ip.vip, 80, '/by-vip'))
      expect(seen).toMatchObject({ port: 8080, path: '/by-vip' })
      expect(seen.xfcc).toContain(`URI=${A_ID}`)
      expect(redirected(family)).toBe(before + 1)
    })

    test("(e) a second app port on b (9090), with no annotation and no --inbound-ports, reached by the VIP's port 9090", async () => {
      const seen = await reach(url(ip.vip, 9090, '/second'))
      expect(seen).toMatchObject({ port: 9090, path: '/second' })
      expect(seen.xfcc).toContain(`URI=${A_ID}`)
    })

    podIpRow("(e) the second app port reached by b's pod IP: the sidecar forwards to the port dialled", async () => {
      const seen = await reach(url(ip.b, 9090, '/second'))
      expect(seen).toMatchObject({ port: 9090, path: '/second' })
      expect(seen.xfcc).toContain(`URI=${A_ID}`)
    })

    test("(e) b intercepts every app port: a plaintext call that bypasses a's sidecar (its UID) to 8080 or 9090 is redirected to b's sidecar and refused", async () => {
      // UID 1337 in a is excluded from interception, so these calls leave a in plaintext.
      for (const port of APP_PORTS) {
        const r = await call(1337, url(ip.b, port, '/bypass'))
        expect(r.status === undefined || r.status >= 400, `${port}: ${JSON.stringify(r)}`).toBe(true)
        expect(r.body ?? '').not.toContain('"path"')
      }
    })

    // ── Rows to come (issue 15), one test each per family, when the feature exists on main: ──
    // - TCP: a's app talks Redis (Debian redis-server, in .ci/packages.txt; server-first) to b's
    //   pod IP and to the VIP on 6379: PING → PONG, the L4 allow/deny, Istio's TCP metrics.
    // - TLS by SNI: a's app does its own TLS to b (passthrough, never terminated).
    // - gRPC: a unary call over h2 to a gRPC server in b, grpc-status and the request metrics.
    // ── end of the rows to come ──
  })

  test("the sidecar's own connections to b are not redirected back into itself: its UID returns first", () => {
    // The only UID-1337 connections in a that reach OUTPUT's owner rule are the sidecar's mTLS
    // connections to b:15006 (kept alive in its pools) and the bypass calls above: had the
    // sidecar's been redirected, they would have looped into 15001 and no call could reach b.
    for (const family of FAMILIES) expect(counter(NS.a, family, 'REMORA_OUTPUT', /owner UID match 1337/)).toBeGreaterThanOrEqual(1)
  })

  test('--clean-up removes every rule of both families: traffic then goes straight to the app, with no sidecar in between', async () => {
    for (const ns of [NS.a, NS.b]) {
      const c = await run(inNs(ns, null, [process.execPath, '--import', 'tsx', CLI, 'init-iptables', '--clean-up']))
      expect(c.code, c.out).toBe(0)
      expect(sh(inNs(ns, null, ['iptables-save', '-t', 'nat']))).not.toMatch(/REMORA/)
      expect(sh(inNs(ns, null, ['ip6tables-save', '-t', 'nat']))).not.toMatch(/REMORA/)
    }
    for (const family of FAMILIES) {
      const seen = await reach(url(IP[family].b, 9090, '/direct'))
      expect(unmapped(seen.from)).toBe(IP[family].a)
      expect(seen.xfcc).toBeNull()
    }
  })
})
