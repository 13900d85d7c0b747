// `remora ca` driven through the real dispatcher, in a temp directory.
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, test, vi } from 'vitest'
import { main } from '../../../cli/main.js'

let dir: string
let out: string[]
let err: string[]

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-ca-cli-'))
  out = []
  err = []
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
})

afterEach(async () => {
  vi.restoreAllMocks()
  await rm(dir, { recursive: true, force: true })
})

const mode = async (file: string) => (await stat(file)).mode & 0o777

async function init(): Promise<string> {
  const certs = join(dir, 'certs')
  expect(await main(['ca', 'init', '--trust-domain', 'cluster.local', '--out', certs])).toBe(0)
  return certs
}

test('ca init writes a CA root (ca.pem) and its key (ca-key.pem, mode 0600)', async () => {
  const certs = await init()
  const root = new X509Certificate(await readFile(join(certs, 'ca.pem')))
  expect(root.ca).toBe(true)
  expect(root.subjectAltName).toBe('URI:spiffe://cluster.local')
  expect(await mode(join(certs, 'ca-key.pem'))).toBe(0o600)
  expect(root.checkPrivateKey(createPrivateKey(await readFile(join(certs, 'ca-key.pem'))))).toBe(true)
  expect(err).toEqual([])
})

test('ca init refuses to overwrite an existing key: exit 2, one line on stderr, key unchanged', async () => {
  const certs = await init()
  const before = await readFile(join(certs, 'ca-key.pem'), 'utf8')
  expect(await main(['ca', 'init', '--trust-domain', 'cluster.local', '--out', certs])).toBe(2)
  expect(err).toHaveLength(1)
  expect(err[0]).toMatch(/already exists.*--force/)
  expect(await readFile(join(certs, 'ca-key.pem'), 'utf8')).toBe(before)
})

test('ca init --force overwrites the key and resets its mode to 0600', async () => {
  const certs = await init()
  const keyFile = join(certs, 'ca-key.pem')
  const before = await readFile(keyFile, 'utf8')
  await chmod(keyFile, 0o644)
  expect(await main(['ca', 'init', '--trust-domain', 'cluster.local', '--out', certs, '--force'])).toBe(0)
  expect(await readFile(keyFile, 'utf8')).not.toBe(before)
  expect(await mode(keyFile)).toBe(0o600)
})

test('ca issue writes <out>.pem (signed by the CA, exactly the URI SAN, --ttl honoured) and <out>-key.pem (0600)', async () => {
  const certs = await init()
  const id = 'spiffe://cluster.local/ns/shop/sa/orders'
  const start = Date.now()
  expect(await main(['ca', 'issue', '--ca-dir', certs, '--spiffe-id', id, '--out', join(certs, 'orders'), '--ttl', '90m'])).toBe(0)
  const leaf = new X509Certificate(await readFile(join(certs, 'orders.pem')))
  const root = new X509Certificate(await readFile(join(certs, 'ca.pem')))
  expect(leaf.subjectAltName).toBe(`URI:${id}`)
  expect(leaf.verify(root.publicKey)).toBe(true)
  const ttl = Date.parse(leaf.validTo) - start
  expect(ttl).toBeGreaterThan(89 * 60_000)
  expect(ttl).toBeLessThanOrEqual(91 * 60_000)
  expect(leaf.checkPrivateKey(createPrivateKey(await readFile(join(certs, 'orders-key.pem'))))).toBe(true)
  expect(await mode(join(certs, 'orders-key.pem'))).toBe(0o600)
  expect(out.join('\n')).toContain(id)
})

test('ca issue refuses an identity outside the CA trust domain: exit 2, one stderr line naming the reason, no files', async () => {
  const certs = await init()
  const code = await main(['ca', 'issue', '--ca-dir', certs, '--spiffe-id', 'spiffe://other.example/ns/a/sa/b', '--out', join(certs, 'b')])
  expect(code).toBe(2)
  expect(err).toHaveLength(1)
  expect(err[0]).toMatch(/outside the CA trust domain/)
  await expect(stat(join(certs, 'b.pem'))).rejects.toMatchObject({ code: 'ENOENT' })
})

test('ca issue rejects a malformed --ttl with exit 2', async () => {
  const certs = await init()
  const code = await main(['ca', 'issue', '--ca-dir', certs, '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b', '--out', join(certs, 'b'), '--ttl', '24 hours'])
  expect(code).toBe(2)
  expect(err[0]).toMatch(/invalid duration/)
})

test('ca issue without --spiffe-id fails with exit 2 and a one-line message', async () => {
  const certs = await init()
  expect(await main(['ca', 'issue', '--ca-dir', certs, '--out', join(certs, 'x')])).toBe(2)
  expect(err).toEqual(['remora ca issue: --spiffe-id is required'])
})

test('ca --help prints the usage of both subcommands on stdout with exit 0', async () => {
  expect(await main(['ca', '--help'])).toBe(0)
  expect(out.join('\n')).toMatch(/remora ca init[\s\S]*remora ca issue/)
  expect(err).toEqual([])
})

test('ca with an unknown subcommand exits 2', async () => {
  expect(await main(['ca', 'frobnicate'])).toBe(2)
  expect(err[0]).toMatch(/unknown subcommand/)
})
