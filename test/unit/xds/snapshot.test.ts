import { deflateRawSync } from 'node:zlib'
import { CompactSign } from 'jose'
import { expect, test } from 'vitest'
import { createRootCa, generateSigningKey, importSigningKey, systemClock } from '../../../control-plane/ca/index.js'
import { buildSnapshot, signSnapshot } from '../../../control-plane/push/index.js'
import { importPinnedKey, verifySnapshot, XdsError } from '../../../proxy/xds/index.js'

async function setup() {
  const ca = await createRootCa({ trustDomain: 'cluster.local' }, { clock: systemClock })
  const sk = await importSigningKey((await generateSigningKey()).privateJwk)
  const payload = buildSnapshot({ trustDomain: 'cluster.local', rootNamespace: 'remora-system', policies: [], clusters: [{ name: 'a.shop', hosts: ['a'], endpoints: ['127.0.0.1:1'], identities: ['spiffe://cluster.local/ns/shop/sa/a'] }], trustBundle: ca.certPem })
  return { sk, payload, pinned: await importPinnedKey(sk.publicJwk) }
}

const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (e instanceof XdsError ? `${e.code} ${e.lines().join(' ')}` : String(e)))

test('snapshots travel deflated under a critical zip header and verify back to the same payload', async () => {
  const { sk, payload, pinned } = await setup()
  const signed = await signSnapshot(payload, sk)
  const header = JSON.parse(Buffer.from(signed.jws.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>
  expect(header).toMatchObject({ alg: 'ES256', typ: 'remora-snapshot+jws', zip: 'DEF', crit: ['zip'] })
  expect(await verifySnapshot(signed.jws, pinned)).toEqual(payload)
})

test('an uncompressed snapshot (no zip header) still verifies', async () => {
  const { sk, payload, pinned } = await setup()
  const jws = await new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', kid: sk.kid, typ: 'remora-snapshot+jws' }).sign(sk.privateKey)
  expect(await verifySnapshot(jws, pinned)).toEqual(payload)
})

test('an unknown critical header, an unknown zip and a signed zip bomb are refused', async () => {
  const { sk, payload, pinned } = await setup()
  const sign = (body: Uint8Array, h: Record<string, unknown>, crit: Record<string, boolean>) => new CompactSign(body).setProtectedHeader({ alg: 'ES256', kid: sk.kid, typ: 'remora-snapshot+jws', ...h }).sign(sk.privateKey, { crit })
  const json = Buffer.from(JSON.stringify(payload))
  expect(await code(verifySnapshot(await sign(json, { x: 1, crit: ['x'] }, { x: true }), pinned))).toMatch(/^REMORA_ERR_XDS_SIGNATURE/)
  expect(await code(verifySnapshot(await sign(deflateRawSync(json), { zip: 'GZ', crit: ['zip'] }, { zip: true }), pinned))).toMatch(/^REMORA_ERR_XDS_SNAPSHOT_INVALID .*unknown zip/)
  const bomb = deflateRawSync(Buffer.alloc(80 * 1024 * 1024, 0x20))
  expect(await code(verifySnapshot(await sign(bomb, { zip: 'DEF', crit: ['zip'] }, { zip: true }), pinned))).toMatch(/^REMORA_ERR_XDS_SNAPSHOT_INVALID/)
})
