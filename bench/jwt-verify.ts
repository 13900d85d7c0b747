// JWT verification cost per request, as the authnJwt stage pays it: `npx tsx bench/jwt-verify.ts`.
// Uncached = the whole path (extraction, header/payload decode, key pick, jose verify, claims);
// cached = a repeated token (extraction + SHA-256 + LRU lookup). Prints one JSON object.
import { generateKeyPairSync, sign } from 'node:crypto'
import { createJwtAuthenticator, createStaticJwksSource } from '../proxy/authn/index.js'
import { compileRequestAuthn, jwtRulesForWorkload, validate, type PolicyDocument } from '../proxy/policy/index.js'

type Alg = 'ES256' | 'RS256'
const ISS = 'https://issuer.bench'

function setup(alg: Alg) {
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid: 'k1', alg }
  const doc = validate({
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'bench', namespace: 'shop' },
    spec: { jwtRules: [{ issuer: ISS, jwks: JSON.stringify({ keys: [jwk] }), audiences: ['orders'] }] },
  }).policy as PolicyDocument
  const rules = jwtRulesForWorkload(compileRequestAuthn([doc]), { namespace: 'shop', labels: {} }).rules
  const now = Math.floor(Date.now() / 1000)
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const input = `${b64({ alg, kid: 'k1', typ: 'JWT' })}.${b64({ iss: ISS, sub: 'alice', aud: 'orders', iat: now, exp: now + 3600, groups: ['buyers', 'dev'], email: 'alice@example.com' })}`
  const sig = alg === 'ES256' ? sign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(input), pair.privateKey)
  const token = `${input}.${sig.toString('base64url')}`
  const make = (cacheSize: number) => createJwtAuthenticator(rules, { cacheSize, sourceFor: (r) => createStaticJwksSource(r.jwks) }, { clock: { now: () => Date.now() } })
  return { token, uncached: make(0), cached: make(4096) }
}

async function perCall(fn: () => Promise<unknown>, n: number): Promise<number> {
  for (let i = 0; i < Math.min(n, 200); i++) await fn() // warm-up
  const samples: number[] = []
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await fn()
    samples.push(Number(process.hrtime.bigint() - t0) / 1000 / n)
  }
  samples.sort((a, b) => a - b)
  return Math.round(samples[2]! * 100) / 100 // median of 5 rounds, µs
}

const result: Record<string, unknown> = { node: process.version, unit: 'µs per request (median of 5 rounds)', target: { cachedMaxUs: 5 } }
for (const alg of ['ES256', 'RS256'] as const) {
  const { token, uncached, cached } = setup(alg)
  const input = { rawHeaders: ['host', 'orders.shop', 'authorization', `Bearer ${token}`], query: '' }
  const ok = await cached.authenticate(input)
  if (ok.result !== 'ok') throw new Error(`${alg}: bench token did not verify: ${JSON.stringify(ok)}`)
  const u = await perCall(() => uncached.authenticate(input), 1000)
  const c = await perCall(() => cached.authenticate(input), 100_000)
  result[alg] = { uncachedUs: u, cachedUs: c, tokenBytes: token.length, cachedMeetsTarget: c < 5 }
}
console.log(JSON.stringify(result, null, 2))
