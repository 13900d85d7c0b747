// RequestAuthentication compilation: scope (selector / namespace / root namespace) as for
// AuthorizationPolicy, token locations and their default, and the pinned algorithms of a key.
import { describe, expect, test } from 'vitest'
import { algorithmsForJwk, compileRequestAuthn, jwtRulesForWorkload, validate, type PolicyDocument } from '../../../proxy/policy/index.js'

const JWKS = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'k1', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] })

function ra(name: string, namespace: string, spec: Record<string, unknown>): PolicyDocument {
  const r = validate({ apiVersion: 'security.istio.io/v1beta1', kind: 'RequestAuthentication', metadata: { name, namespace }, spec })
  expect(r.errors).toEqual([])
  return r.policy!
}

const rule = (issuer: string, extra: Record<string, unknown> = {}) => ({ issuer, jwks: JWKS, ...extra })
const orders = { namespace: 'shop', labels: { app: 'orders' } }

describe('jwtRulesForWorkload(): scope', () => {
  const docs = [
    ra('mesh', 'remora-system', { jwtRules: [rule('mesh-iss')] }),
    ra('ns', 'shop', { jwtRules: [rule('ns-iss')] }),
    ra('orders-only', 'shop', { selector: { matchLabels: { app: 'orders' } }, jwtRules: [rule('orders-iss')] }),
    ra('payments-only', 'shop', { selector: { matchLabels: { app: 'payments' } }, jwtRules: [rule('payments-iss')] }),
    ra('other-ns', 'billing', { jwtRules: [rule('billing-iss')] }),
  ]
  const set = compileRequestAuthn(docs)

  test('a workload gets the root namespace, its namespace and its selector matches, merged in name order', () => {
    const w = jwtRulesForWorkload(set, orders)
    expect(w.policies).toEqual(['remora-system/mesh', 'shop/ns', 'shop/orders-only'])
    expect(w.rules.map((r) => r.issuer)).toEqual(['mesh-iss', 'ns-iss', 'orders-iss'])
  })

  test('another namespace only gets the mesh-wide rule', () => {
    expect(jwtRulesForWorkload(set, { namespace: 'web', labels: { app: 'orders' } }).rules.map((r) => r.issuer)).toEqual(['mesh-iss'])
  })

  test('a custom root namespace', () => {
    const s = compileRequestAuthn(docs, { rootNamespace: 'billing' })
    expect(jwtRulesForWorkload(s, { namespace: 'web', labels: {} }).rules.map((r) => r.issuer)).toEqual(['billing-iss'])
  })

  test('other kinds are ignored', () => {
    const ap = validate({ apiVersion: 'security.remora.dev/v1', kind: 'AuthorizationPolicy', metadata: { name: 'a', namespace: 'shop' }, spec: {} }).policy!
    expect(compileRequestAuthn([ap]).policies).toEqual([])
  })
})

describe('compiled rules', () => {
  test('no location configured: Authorization: Bearer only', () => {
    const [r] = jwtRulesForWorkload(compileRequestAuthn([ra('a', 'shop', { jwtRules: [rule('i')] })]), orders).rules
    expect(r!.locations).toEqual([{ kind: 'header', name: 'authorization', prefix: 'Bearer ' }])
    expect(r!.forwardOriginalToken).toBe(false)
    expect(r!.jwks?.keys[0]?.kid).toBe('k1')
    expect(r!.id).toBe('shop/a jwtRules[0]')
  })

  test('configured locations replace the default; output headers are lower-cased and claims split on "."', () => {
    const [r] = jwtRulesForWorkload(
      compileRequestAuthn([ra('a', 'shop', { jwtRules: [rule('i', { fromHeaders: [{ name: 'X-Jwt' }], fromParams: ['t'], fromCookies: ['s'], outputClaimToHeaders: [{ header: 'X-Role', claim: 'realm.role' }], timeout: '250ms' })] })]),
      orders,
    ).rules
    expect(r!.locations).toEqual([
      { kind: 'header', name: 'x-jwt', prefix: '' },
      { kind: 'param', name: 't' },
      { kind: 'cookie', name: 's' },
    ])
    expect(r!.outputClaimToHeaders).toEqual([{ header: 'x-role', claim: ['realm', 'role'] }])
    expect(r!.timeoutMs).toBe(250)
  })
})

describe('algorithmsForJwk(): algorithms come from the key', () => {
  test.each([
    [{ kty: 'RSA', n: 'x', e: 'AQAB' }, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']],
    [{ kty: 'RSA', n: 'x', e: 'AQAB', alg: 'RS256' }, ['RS256']],
    [{ kty: 'RSA', n: 'x', e: 'AQAB', alg: 'ES256' }, []],
    [{ kty: 'RSA', n: 'x', e: 'AQAB', alg: 'HS256' }, []],
    [{ kty: 'EC', crv: 'P-256' }, ['ES256']],
    [{ kty: 'EC', crv: 'P-384' }, ['ES384']],
    [{ kty: 'EC', crv: 'P-256', alg: 'ES384' }, []],
    [{ kty: 'OKP', crv: 'Ed25519' }, ['EdDSA', 'Ed25519']],
    [{ kty: 'OKP', crv: 'X25519' }, []],
    [{ kty: 'oct' }, []],
    [{ kty: 'EC', crv: 'P-256', use: 'enc' }, []],
    [{ kty: 'EC', crv: 'P-256', alg: 'none' }, []],
  ])('%j → %j', (jwk, algs) => {
    expect(algorithmsForJwk(jwk)).toEqual(algs)
  })
})
