// Interception for real (root): two network namespaces made by this test ("pods" a and b, joined by
// a veth pair), `remora init-iptables` in each, a sidecar in each running as UID 1337, and plain
// apps running as another UID. App a calls b's plain address; the call goes a's app → a's sidecar
// (outbound 15001, by Host) → mTLS → b's sidecar (15006) → b's app, and neither app knows.
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
// A private /24 from a random second octet in 10.200-10.249: no clash with parallel runs.
const NET = `10.${200 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]!}`
const IP = { a: `${NET}.1`, b: `${NET}.2` }

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

// The app in b: answers with what it saw (peer address, the XFCC header its sidecar set).
const APP_B = `require('node:http').createServer((q,r)=>{r.setHeader('content-type','application/json');r.end(JSON.stringify({path:q.url,from:q.socket.remoteAddress,xfcc:q.headers['x-forwarded-client-cert']||null}))}).listen(8080,'0.0.0.0',()=>console.log('listening'))`
// The app in a: a plain HTTP GET to b's address; it never sets a proxy.
const CALL = (url: string): string =>
  `require('node:http').get(${JSON.stringify(url)},{timeout:5000},(r)=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>{console.log(JSON.stringify({status:r.statusCode,body:b}));process.exit(0)})}).on('error',(e)=>{console.log(JSON.stringify({error:e.code||e.message}));process.exit(0)}).on('timeout',function(){this.destroy(new Error('timeout'))})`

async function call(fromUid: number, url: string): Promise<{ status?: number; body?: string; error?: string }> {
  const r = await run(inNs(NS.a, fromUid, [process.execPath, '-e', CALL(url)]))
  return JSON.parse(r.out.trim().split('\n').at(-1)!)
}

/** Packet count of the first REMORA_OUTPUT rule matching `pattern` in namespace a. */
function counter(ns: string, chain: string, pattern: RegExp): number {
  const out = sh(inNs(ns, null, ['iptables', '-t', 'nat', '-L', chain, '-v', '-n', '-x']))
  const line = out.split('\n').find((l) => pattern.test(l))
  if (!line) throw new Error(`no rule matching ${pattern} in ${chain}:\n${out}`)
  return Number(line.trim().split(/\s+/)[0])
}

let dir: string

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the interception test needs root (network namespaces and iptables): run test:system as root')
  need('ip', 'iproute2')
  need('iptables', 'iptables')
  need('iptables-restore', 'iptables')
  need('setpriv', 'util-linux')
  sh(['ip', 'netns', 'add', NS.a])
  sh(['ip', 'netns', 'add', NS.b])
  sh(['ip', 'link', 'add', `va-${suffix}`, 'netns', NS.a, 'type', 'veth', 'peer', 'name', `vb-${suffix}`, 'netns', NS.b])
  for (const [ns, dev, ip] of [
    [NS.a, `va-${suffix}`, IP.a],
    [NS.b, `vb-${suffix}`, IP.b],
  ] as const) {
    sh(inNs(ns, null, ['ip', 'addr', 'add', `${ip}/24`, 'dev', dev]))
    sh(inNs(ns, null, ['ip', 'link', 'set', dev, 'up']))
    sh(inNs(ns, null, ['ip', 'link', 'set', 'lo', 'up']))
  }

  // Files the sidecars (UID 1337) can read; keys 0600 owned by 1337.
  dir = mkdtempSync(join(tmpdir(), 'remora-netns-'))
  chmodSync(dir, 0o755)
  const pki = await createTestPki({ trustDomain: TD })
  for (const [name, id, cfg] of [
    [
      'a',
      A_ID,
      {
        workload: { namespace: 'shop', serviceAccount: 'frontend', labels: { app: 'frontend' } },
        inbound: { app: '127.0.0.1:8081' },
        // The app calls b by its plain address: that Host is the route.
        clusters: [{ name: 'orders.shop', hosts: [`${IP.b}:8080`, 'orders.shop'], endpoints: [`${IP.b}:15006`], identities: [B_ID] }],
      },
    ],
    ['b', B_ID, { workload: { namespace: 'shop', serviceAccount: 'orders', labels: { app: 'orders' } }, inbound: { app: '127.0.0.1:8080' }, policies: { files: ['strict.yaml'] } }],
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

  // The init container's job, in each pod.
  for (const [ns, args] of [
    [NS.a, []],
    [NS.b, ['--inbound-ports', '8080']],
  ] as const) {
    const r = await run(inNs(ns, null, [process.execPath, '--import', 'tsx', CLI, 'init-iptables', '--proxy-uid', '1337', ...args]))
    expect(r.code, r.out).toBe(0)
  }

  start(inNs(NS.b, APP_UID, [process.execPath, '-e', APP_B]))
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
  test("a's app calls b's plain address and reaches b's app through both sidecars over mTLS, without knowing it", async () => {
    const redirected = counter(NS.a, 'REMORA_REDIRECT', /redir ports 15001/)
    const r = await call(APP_UID, `http://${IP.b}:8080/orders/42`)
    expect(r.status).toBe(200)
    const seen = JSON.parse(r.body!)
    expect(seen.path).toBe('/orders/42')
    // b's app was reached by its sidecar over loopback, and that sidecar verified a's certificate.
    expect(seen.from).toBe('127.0.0.1')
    expect(seen.xfcc).toContain(`URI=${A_ID}`)
    // NAT sees the first packet of each connection: the app's connection was redirected once.
    expect(counter(NS.a, 'REMORA_REDIRECT', /redir ports 15001/)).toBe(redirected + 1)
  })

  test("the sidecar's own connection to b is not redirected back into itself: its UID returns first", async () => {
    // The only UID-1337 connection in a so far is the sidecar's mTLS connection to b:15006 (kept
    // alive in its pool): had it been redirected, it would have looped into 15001 and the call
    // above could not have reached b.
    expect(counter(NS.a, 'REMORA_OUTPUT', /owner UID match 1337/)).toBeGreaterThanOrEqual(1)
    expect(counter(NS.a, 'REMORA_REDIRECT', /redir ports 15001/)).toBe(1)
  })

  test("b's app port only takes mTLS: a plaintext call that bypasses a's sidecar is redirected to b's sidecar and refused", async () => {
    // UID 1337 in a is excluded from interception, so this call leaves a in plaintext.
    const r = await call(1337, `http://${IP.b}:8080/orders`)
    expect(r.status === undefined || r.status >= 400, JSON.stringify(r)).toBe(true)
    expect(r.body ?? '').not.toContain('"path"')
  })

  test('--clean-up removes every rule: traffic then goes straight to the app, with no sidecar in between', async () => {
    for (const ns of [NS.a, NS.b]) {
      const c = await run(inNs(ns, null, [process.execPath, '--import', 'tsx', CLI, 'init-iptables', '--clean-up']))
      expect(c.code, c.out).toBe(0)
      expect(sh(inNs(ns, null, ['iptables-save', '-t', 'nat']))).not.toMatch(/REMORA/)
    }
    const r = await call(APP_UID, `http://${IP.b}:8080/direct`)
    expect(r.status).toBe(200)
    const seen = JSON.parse(r.body!)
    expect(seen.from).toBe(IP.a)
    expect(seen.xfcc).toBeNull()
  })
})
