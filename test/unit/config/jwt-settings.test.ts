// sidecar.yaml's `jwt` section: defaults equal to the authenticator's, bounds, strictness, the
// flags and --set that reach it, and how the sidecar combines it with SidecarDeps.jwt.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { DEFAULT_JWKS_COOLDOWN_MS, DEFAULT_JWKS_REFRESH_MS, DEFAULT_LEEWAY_SECONDS, DEFAULT_TOKEN_CACHE_SIZE } from '../../../proxy/authn/index.js'
import { ConfigError, loadSidecarConfig, parseDuration, validateSidecarConfig, type ConfigIssue, type SidecarConfig } from '../../../proxy/config/index.js'
import { parseProxyArgs } from '../../../proxy/main.js'
import { effectiveJwtSettings } from '../../../proxy/sidecar.js'

const BASE = {
  apiVersion: 'remora.dev/v1',
  kind: 'SidecarConfig',
  workload: { namespace: 'shop', serviceAccount: 'orders' },
  identity: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' },
}

function parse(jwt?: unknown): SidecarConfig {
  const r = validateSidecarConfig(jwt === undefined ? BASE : { ...BASE, jwt })
  if (!r.ok) throw new Error(JSON.stringify(r.issues))
  return r.config
}

function issues(jwt: unknown): ConfigIssue[] {
  const r = validateSidecarConfig({ ...BASE, jwt })
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(jwt)}`)
  return r.issues
}

/** Overrides for loadSidecarConfig without a file: the minimum a valid config needs. */
const REQUIRED: [string, unknown][] = [
  ['workload.namespace', 'shop'],
  ['workload.serviceAccount', 'orders'],
  ['identity.certFile', 'c.pem'],
  ['identity.keyFile', 'k.pem'],
  ['identity.caFile', 'ca.pem'],
]

describe('jwt section: defaults', () => {
  test('absent: the authenticator and JWKS defaults (60s, 4096, 10m, 30s)', () => {
    expect(parse().jwt).toEqual({ leeway: '60s', cacheSize: 4096, jwksRefresh: '10m', jwksCooldown: '30s' })
  })

  test('the schema defaults are the constants of proxy/authn, so the two cannot drift', () => {
    const j = parse().jwt
    expect(parseDuration(j.leeway)).toBe(DEFAULT_LEEWAY_SECONDS * 1000)
    expect(j.cacheSize).toBe(DEFAULT_TOKEN_CACHE_SIZE)
    expect(parseDuration(j.jwksRefresh)).toBe(DEFAULT_JWKS_REFRESH_MS)
    expect(parseDuration(j.jwksCooldown)).toBe(DEFAULT_JWKS_COOLDOWN_MS)
  })

  test('a partial section: the fields left out keep their defaults', () => {
    expect(parse({ leeway: '30s' }).jwt).toEqual({ leeway: '30s', cacheSize: 4096, jwksRefresh: '10m', jwksCooldown: '30s' })
    expect(parse({}).jwt).toEqual(parse().jwt)
  })
})

describe('jwt section: accepted values', () => {
  test.each<[Record<string, unknown>, string]>([
    [{ leeway: '0s' }, 'no leeway'],
    [{ leeway: '300s' }, 'the upper bound'],
    [{ leeway: '5m' }, '5m = 300s'],
    [{ leeway: '2000ms' }, 'whole seconds written in ms'],
    [{ cacheSize: 0 }, 'cache off'],
    [{ cacheSize: 1_000_000 }, 'the largest cache'],
    [{ jwksRefresh: '10s', jwksCooldown: '1s' }, 'the lower JWKS bounds'],
    [{ jwksRefresh: '24h', jwksCooldown: '1h' }, 'the upper JWKS bounds'],
  ])('%j (%s)', (jwt) => {
    expect(parse(jwt).jwt).toMatchObject(jwt)
  })
})

describe('jwt section: rejected values name the field', () => {
  test('an unknown field under jwt', () => {
    expect(issues({ leewaySeconds: 5 })).toEqual([{ path: 'jwt.leewaySeconds', message: 'unknown field' }])
    expect(issues({ leeway: '5s', cache_size: 10 })).toEqual([{ path: 'jwt.cache_size', message: 'unknown field' }])
  })

  test('a leeway over 300s: refused, with the bound and why', () => {
    expect(issues({ leeway: '301s' })).toEqual([{ path: 'jwt.leeway', message: 'at most 300s: a larger leeway keeps accepting expired tokens (Istio and Envoy use 60s)' }])
    expect(issues({ leeway: '1h' })[0]).toMatchObject({ path: 'jwt.leeway', message: expect.stringMatching(/^at most 300s/) })
  })

  test('a negative, non-duration or fractional-second leeway', () => {
    for (const leeway of ['-5s', '60', 'forever', 60, -1]) {
      expect(issues({ leeway }), String(leeway)).toEqual([{ path: 'jwt.leeway', message: 'expected a duration in whole seconds, 0s..300s, like 60s' }])
    }
    expect(issues({ leeway: '1500ms' })).toEqual([{ path: 'jwt.leeway', message: 'expected whole seconds (JWT exp and nbf are in seconds), like 60s' }])
  })

  test('a negative, fractional, huge or non-numeric cacheSize', () => {
    for (const cacheSize of [-1, 1.5, 1_000_001, '10']) {
      expect(issues({ cacheSize }), String(cacheSize)).toEqual([{ path: 'jwt.cacheSize', message: expect.stringMatching(/0\.\.1000000 \(0 = off\)$/) }])
    }
  })

  test('JWKS timings out of bounds (a tight refetch loop, or keys never refreshed)', () => {
    expect(issues({ jwksRefresh: '1s' })).toEqual([{ path: 'jwt.jwksRefresh', message: 'expected a duration 10s..24h, like 10m' }])
    expect(issues({ jwksRefresh: '7d' })).toEqual([{ path: 'jwt.jwksRefresh', message: 'expected a duration 10s..24h, like 10m' }])
    expect(issues({ jwksCooldown: '0s' })).toEqual([{ path: 'jwt.jwksCooldown', message: 'expected a duration 1s..1h, like 30s' }])
    expect(issues({ jwksCooldown: '2h' })).toEqual([{ path: 'jwt.jwksCooldown', message: 'expected a duration 1s..1h, like 30s' }])
  })

  test('jwt must be a mapping', () => {
    expect(issues('60s')[0]!.path).toBe('jwt')
  })
})

describe('flags and --set', () => {
  test('--jwt-leeway and --jwt-cache-size map to jwt.leeway and jwt.cacheSize (a number)', () => {
    const args = parseProxyArgs(['--jwt-leeway', '30s', '--jwt-cache-size', '0'])
    expect(args.overrides).toEqual(
      expect.arrayContaining([
        ['jwt.leeway', '30s'],
        ['jwt.cacheSize', 0],
      ]),
    )
  })

  test('flags and --set jwt.* reach the validated config', async () => {
    const args = parseProxyArgs(['--jwt-cache-size', '128', '--set', 'jwt.leeway=30s', '--set', 'jwt.jwksCooldown=1m', '--set', 'jwt.jwksRefresh=15m'])
    const { config } = await loadSidecarConfig(undefined, [...REQUIRED, ...args.overrides])
    expect(config.jwt).toEqual({ leeway: '30s', cacheSize: 128, jwksRefresh: '15m', jwksCooldown: '1m' })
  })

  test('an out-of-bounds value from a flag is a ConfigError naming the field', async () => {
    const err = await loadSidecarConfig(undefined, [...REQUIRED, ...parseProxyArgs(['--jwt-leeway', '301s', '--jwt-cache-size=-1']).overrides]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).issues.map((i) => i.path)).toEqual(['jwt.leeway', 'jwt.cacheSize'])
  })

  test('a misspelt --jwt-* flag is refused, not ignored', () => {
    expect(() => parseProxyArgs(['--jwt-leeway-seconds', '5'])).toThrow(/Unknown option/)
  })
})

describe('effective settings: config.jwt, with SidecarDeps.jwt winning field by field', () => {
  test('from config alone, in the authenticator’s units', () => {
    expect(effectiveJwtSettings(parse({ leeway: '5s', cacheSize: 10, jwksRefresh: '1m', jwksCooldown: '2s' }), undefined)).toEqual({
      leewaySeconds: 5,
      cacheSize: 10,
      jwksRefreshMs: 60_000,
      jwksCooldownMs: 2_000,
    })
    expect(effectiveJwtSettings(parse(), {})).toEqual({ leewaySeconds: 60, cacheSize: 4096, jwksRefreshMs: 600_000, jwksCooldownMs: 30_000 })
  })

  test('an explicit deps.jwt field wins; the others still come from config (0 is a value, not "unset")', () => {
    const c = parse({ leeway: '5s', cacheSize: 10 })
    expect(effectiveJwtSettings(c, { leewaySeconds: 0, jwks: { cooldownMs: 100 } })).toEqual({ leewaySeconds: 0, cacheSize: 10, jwksRefreshMs: 600_000, jwksCooldownMs: 100 })
    expect(effectiveJwtSettings(c, { cacheSize: 0, jwks: { refreshIntervalMs: 50, ca: 'x' } })).toEqual({ leewaySeconds: 5, cacheSize: 0, jwksRefreshMs: 50, jwksCooldownMs: 30_000 })
  })
})

describe('docs/jwt.md "Settings" matches the schema', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/jwt.md', import.meta.url)), 'utf8')
  const section = doc.slice(doc.indexOf('## Settings'), doc.indexOf('## Offline check'))

  test('the yaml block is valid and spells out the defaults', () => {
    const block = /```yaml\n([\s\S]*?)```/.exec(section)![1]!
    const j = (parseYaml(block) as { jwt: unknown }).jwt
    expect(parse(j).jwt).toEqual(parse().jwt)
    expect(j).toEqual(parse().jwt)
  })

  test('the table lists every field with its default', () => {
    const rows = [...section.matchAll(/^\| `jwt\.(\w+)` \| `([^`]+)` \|/gm)].map((m) => [m[1]!, m[2]!])
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(parse().jwt).map(([k, v]) => [k, String(v)])))
  })

  test('the error quoted is the one the schema gives', () => {
    const quoted = /^ {2}(jwt\.leeway: .*)$/m.exec(section)![1]!
    const [i] = issues({ leeway: '301s' })
    expect(quoted).toBe(`${i!.path}: ${i!.message}`)
  })
})
