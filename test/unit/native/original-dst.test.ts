// The native addon as the sidecar loads it: built by `npm ci` (the root package's install script),
// loaded once, and null for every connection that was not redirected. The redirected case (a real
// iptables REDIRECT, IPv4 and IPv6) is test/system/interception.test.ts.
import net from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { ADDON_FILE, NativeError, nativeStatus, originalDst } from '../../../proxy/native/index.js'
import { loadAddon } from '../../../proxy/native/original-dst.js'

const servers: net.Server[] = []
const sockets: net.Socket[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

/** A real connection on loopback: the server's accepted socket and the client's. */
async function connectionOn(listenHost: string, connectHost: string): Promise<{ accepted: net.Socket; client: net.Socket }> {
  const server = net.createServer()
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, listenHost, r))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect((server.address() as net.AddressInfo).port, connectHost)
  sockets.push(client)
  await new Promise<void>((r, j) => client.once('connect', r).once('error', j))
  const a = await accepted
  sockets.push(a)
  return { accepted: a, client }
}

describe('proxy/native: the SO_ORIGINAL_DST addon', () => {
  test('the addon built at install loads (on this Node version too)', () => {
    const s = nativeStatus()
    expect(s.ok, s.ok ? '' : s.reason).toBe(true)
  })

  test('a plain IPv4 loopback connection was not redirected: null on both ends', async () => {
    const { accepted, client } = await connectionOn('127.0.0.1', '127.0.0.1')
    expect(originalDst(accepted)).toBeNull()
    expect(originalDst(client)).toBeNull()
  })

  test('a plain IPv6 loopback connection: null (the IPv6 option is asked)', async () => {
    const { accepted } = await connectionOn('::1', '::1')
    expect(accepted.localAddress).toBe('::1')
    expect(originalDst(accepted)).toBeNull()
  })

  test('an IPv4 client of a dual-stack listener (::ffff:127.0.0.1): the IPv4 option is asked, null', async () => {
    const { accepted } = await connectionOn('::', '127.0.0.1')
    expect(accepted.localAddress).toBe('::ffff:127.0.0.1')
    expect(originalDst(accepted)).toBeNull()
  })

  test('a destroyed socket has no descriptor: REMORA_ERR_NATIVE_ORIGINAL_DST, not a crash', async () => {
    const { accepted } = await connectionOn('127.0.0.1', '127.0.0.1')
    accepted.destroy()
    expect(() => originalDst(accepted)).toThrow(expect.objectContaining({ code: 'REMORA_ERR_NATIVE_ORIGINAL_DST' }))
  })

  test('a missing addon is reported with the fix; a file that is not the addon is told apart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-native-'))
    try {
      const missing = loadAddon([join(dir, ADDON_FILE)])
      expect(missing).toEqual({ ok: false, reason: expect.stringMatching(/build\/Release\/original_dst\.node is missing: run `npm rebuild` or `npm run build:native`.*g\+\+, make and python3/) })
      const notAddon = join(dir, 'other.cjs')
      writeFileSync(notAddon, 'module.exports = {}')
      expect(loadAddon([notAddon])).toEqual({ ok: false, reason: expect.stringContaining("not remora's native addon") })
      const broken = join(dir, 'broken.node')
      writeFileSync(broken, 'not an ELF file')
      expect(loadAddon([broken])).toEqual({ ok: false, reason: expect.stringMatching(/does not load \(.+\): run `npm rebuild`/) })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the error class matches on its code', () => {
    const e = new NativeError('REMORA_ERR_NATIVE_ADDON_MISSING', 'why')
    expect(NativeError.is(e)).toBe(true)
    expect(e.message).toBe('cannot read original destinations: why')
  })
})
