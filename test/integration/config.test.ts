import { mkdtemp, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { runRemora } from '../helpers/process.js'
import { freePort } from '../helpers/upstream.js'

// An invalid sidecar.yaml of each kind stops start-up with exit 2, a message naming the field,
// and nothing listening.
let pki: TestPki
let dir: string

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders'

function yaml(over: { [k: string]: string } = {}, ports: { inbound: number; outbound: number; admin: number }): string {
  const f = {
    trustDomain: 'cluster.local',
    workload: '{ namespace: shop, serviceAccount: orders, labels: { app: orders } }',
    identity: '{ certFile: orders.pem, keyFile: orders-key.pem, caFile: ca.pem }',
    inbound: `{ port: ${ports.inbound}, app: "127.0.0.1:8080" }`,
    outbound: `{ port: ${ports.outbound} }`,
    admin: `{ port: ${ports.admin} }`,
    clusters: '[{ name: payments.shop, hosts: [payments], endpoints: ["127.0.0.1:25006"], identities: ["spiffe://cluster.local/ns/shop/sa/payments"] }]',
    ...over,
  }
  return `apiVersion: remora.dev/v1\nkind: SidecarConfig\n${Object.entries(f)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n')}\n`
}

async function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

beforeAll(async () => {
  pki = await createTestPki()
  dir = await mkdtemp(join(tmpdir(), 'remora-config-'))
  await pki.writeFiles(dir, 'orders', await pki.issue(ORDERS))
  await pki.writeFiles(dir, 'nosan', await pki.issue(ORDERS, { uris: [] }))
  await pki.writeFiles(dir, 'expired', await pki.issue(ORDERS, { expired: true }))
  await pki.writeFiles(dir, 'other', await pki.issue('spiffe://cluster.local/ns/shop/sa/payments'))
})

async function expectExit2(over: { [k: string]: string }, fieldMessage: RegExp): Promise<void> {
  const ports = { inbound: await freePort(), outbound: await freePort(), admin: await freePort() }
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`)
  await writeFile(file, yaml(over, ports))
  const child = runRemora(['proxy', '--config', file])
  const code = await child.exited
  expect(code).toBe(2)
  expect(child.stderr).toMatch(fieldMessage)
  expect(await isListening(ports.inbound)).toBe(false)
  expect(await isListening(ports.outbound)).toBe(false)
  expect(await isListening(ports.admin)).toBe(false)
}

describe('remora proxy: invalid sidecar.yaml → exit 2 naming the field, nothing listening', () => {
  test('an endpoint that is not host:port', async () => {
    await expectExit2({ clusters: '[{ name: p, hosts: [p], endpoints: ["127.0.0.1:1", "nope"], identities: ["spiffe://cluster.local/ns/shop/sa/p"] }]' }, /clusters\[0\]\.endpoints\[1\]: expected host:port/)
  })
  test('an unknown field', async () => {
    await expectExit2({ inbound: '{ port: 0, app: "127.0.0.1:8080", colour: blue }' }, /inbound\.colour: unknown field/)
  })
  test('a wrong type', async () => {
    await expectExit2({ outbound: '{ port: "fifteen" }' }, /outbound\.port: expected a port number/)
  })
  test('a missing certificate file', async () => {
    await expectExit2({ identity: '{ certFile: missing.pem, keyFile: orders-key.pem, caFile: ca.pem }' }, /identity\.certFile: cannot read missing\.pem/)
  })
  test('a certificate without a SPIFFE URI SAN', async () => {
    await expectExit2({ identity: '{ certFile: nosan.pem, keyFile: nosan-key.pem, caFile: ca.pem }' }, /identity\.certFile: certificate has no SPIFFE URI SAN/)
  })
  test('an expired certificate', async () => {
    await expectExit2({ identity: '{ certFile: expired.pem, keyFile: expired-key.pem, caFile: ca.pem }' }, /identity\.certFile: certificate expired/)
  })
  test('a certificate for another workload', async () => {
    await expectExit2({ identity: '{ certFile: other.pem, keyFile: other-key.pem, caFile: ca.pem }' }, /identity\.certFile: certificate identity .*payments does not match/)
  })
  test('a key that does not match the certificate', async () => {
    await expectExit2({ identity: '{ certFile: orders.pem, keyFile: other-key.pem, caFile: ca.pem }' }, /identity\.keyFile: private key does not match/)
  })
  test('a port in use (the others are released)', async () => {
    const busy = net.createServer()
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r))
    const port = (busy.address() as net.AddressInfo).port
    try {
      await expectExit2({ outbound: `{ port: ${port} }` }, new RegExp(`outbound\\.port: port ${port} is already in use`))
    } finally {
      busy.close()
    }
  })
  test('an invalid policy file', async () => {
    await writeFile(join(dir, 'bad-policy.yaml'), 'apiVersion: security.remora.dev/v1\nkind: PeerAuthentication\nmetadata: { name: x, namespace: shop }\nspec: { mtls: { mode: SOMETIMES } }\n')
    await expectExit2({ policies: '{ files: [bad-policy.yaml] }' }, /policies\.files.*spec\.mtls\.mode/)
  })
})

describe('remora proxy: a valid config starts, serves /ready, and stops cleanly on SIGTERM', () => {
  let child: ReturnType<typeof runRemora> | null = null
  afterAll(async () => {
    await child?.stop()
  })
  test('flags override the file', async () => {
    const ports = { inbound: await freePort(), outbound: await freePort(), admin: await freePort(), metrics: await freePort() }
    const file = join(dir, 'ok.yaml')
    await writeFile(file, yaml({}, { inbound: 1, outbound: 2, admin: 3 }))
    child = runRemora(['proxy', '--config', file, '--inbound-port', String(ports.inbound), '--outbound-port', String(ports.outbound), '--admin-port', String(ports.admin), '--set', `telemetry.metrics.port=${ports.metrics}`])
    const started = await child.waitForLine((o) => o.event === 'sidecar_started')
    expect(started.ports).toEqual(ports)
    const ready = await fetch(`http://127.0.0.1:${ports.admin}/ready`)
    expect(ready.status).toBe(200)
    const dump = await (await fetch(`http://127.0.0.1:${ports.admin}/config_dump`)).text()
    expect(dump).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/)
    const certs = (await (await fetch(`http://127.0.0.1:${ports.admin}/certs`)).json()) as { identity: string }
    expect(certs.identity).toBe(ORDERS)
    expect(await child.stop()).toBe(0)
  })
})
