// The mesh's key-exchange groups: post-quantum first from OpenSSL 3.5 on, decided from the version.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { expect, test } from 'vitest'
import { MESH_GROUPS, POST_QUANTUM, PQ_GROUP, opensslHasMlKem } from '../../../proxy/identity/tls-groups.js'

test('ML-KEM from OpenSSL 3.5', () => {
  expect(opensslHasMlKem('3.0.19')).toBe(false)
  expect(opensslHasMlKem('3.4.1')).toBe(false)
  expect(opensslHasMlKem('3.5.9')).toBe(true)
  expect(opensslHasMlKem('4.0.0')).toBe(true)
  expect(opensslHasMlKem('')).toBe(false)
})

test('the list: post-quantum first where offered, X25519 and P-256 always', () => {
  expect(MESH_GROUPS.split(':')).toEqual(POST_QUANTUM ? [PQ_GROUP, 'X25519', 'prime256v1'] : ['X25519', 'prime256v1'])
})

test('loading the groups leaves OpenSSL clean: the next key import in the process succeeds', () => {
  // a probe by a failing ecdhCurve left a stale error that `remora ca issue` then reported as its own
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })
  expect(createPrivateKey(pem).asymmetricKeyType).toBe('ec')
})
