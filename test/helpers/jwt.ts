// Test keys, hand-made JWS tokens (full control over every header byte, so attacks can be forged
// that a well-behaved library would refuse to sign) and a real JWKS server on port 0.
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface TestKey {
  readonly name: string
  readonly kid: string
  readonly alg: 'RS256' | 'ES256' | 'EdDSA'
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** The public JWK as published (with kid, and alg when `withAlg`). */
  readonly jwk: Record<string, unknown>
  /** Private material, for the "never logged" grep. */
  readonly secrets: readonly string[]
}

export function createTestKey(name: string, alg: TestKey['alg'], kid: string, opts: { withAlg?: boolean } = {}): TestKey {
  const pair =
    alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519')
  const jwk: Record<string, unknown> = { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' }
  if (opts.withAlg) jwk.alg = alg
  const priv = pair.privateKey.export({ format: 'jwk' }) as Record<string, string>
  const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const secrets = [priv.d!, pem.split('\n')[1]!]
  return { name, kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk, secrets }
}

export const jwks = (...keys: TestKey[]): { keys: Record<string, unknown>[] } => ({ keys: keys.map((k) => k.jwk) })

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

/** header.payload.signature, signed as `how` says whatever the header claims. */
export function signJws(header: Record<string, unknown>, payload: Record<string, unknown> | string, how: { key: TestKey } | { hmac: string | Buffer } | 'none'): string {
  const input = `${b64(header)}.${b64(payload)}`
  let sig: Buffer
  if (how === 'none') sig = Buffer.alloc(0)
  else if ('hmac' in how) sig = createHmac('sha256', how.hmac).update(input).digest()
  else {
    const k = how.key
    sig = k.alg === 'RS256' ? sign('sha256', Buffer.from(input), k.privateKey) : k.alg === 'ES256' ? sign('sha256', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' }) : sign(null, Buffer.from(input), k.privateKey)
  }
  return `${input}.${sig.toString('base64url')}`
}

/** How /jwks answers: `ok` serves `body`; the others are a broken issuer (the reliability faults). */
export type JwksServerMode = 'ok' | 'hang' | 'not-json' | 'not-jwks' | 'error-500'

export interface JwksServer {
  readonly url: string
  readonly port: number
  hits: number
  /** What /jwks serves; change it to rotate keys. */
  body: unknown
  /** `hang`: never answers (the request stays open until close); `not-json`: 200 with text; `not-jwks`: 200 with JSON that is no key set; `error-500`. */
  mode: JwksServerMode
  close(): Promise<void>
}

/** A real JWKS endpoint on 127.0.0.1:0 that counts fetches. */
export async function startJwksServer(body: unknown): Promise<JwksServer> {
  const s: JwksServer = {
    url: '',
    port: 0,
    hits: 0,
    body,
    mode: 'ok',
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
  const server = http.createServer((req, res) => {
    s.hits++
    if (req.url !== '/jwks') return void res.writeHead(404).end()
    if (s.mode === 'hang') return
    if (s.mode === 'error-500') return void res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error')
    res.setHeader('content-type', 'application/json')
    if (s.mode === 'not-json') return void res.end('<html>502 Bad Gateway</html>')
    if (s.mode === 'not-jwks') return void res.end(JSON.stringify({ issuer: 'https://issuer.example', jwks_uri: 'https://issuer.example/jwks', keys: 'none' }))
    res.end(JSON.stringify(s.body))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  ;(s as { port: number }).port = (server.address() as AddressInfo).port
  ;(s as { url: string }).url = `http://127.0.0.1:${s.port}/jwks`
  return s
}

/** A clock the test moves by hand (whole seconds, like JWT NumericDate). */
export function manualClock(start = Math.floor(Date.now() / 1000) * 1000): { now(): number; t: number; advance(seconds: number): void; sec(): number } {
  return {
    t: start,
    now() {
      return this.t
    },
    advance(seconds: number) {
      this.t += seconds * 1000
    },
    sec() {
      return Math.floor(this.t / 1000)
    },
  }
}
