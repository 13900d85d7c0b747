// `remora check --jwt` / `--jwks`: JWT authentication exactly as the sidecar runs it (same
// authenticator, same algorithm pinning and claim checks, over the request's headers and query),
// with keys from `--jwks` or the rules' inline `jwks`: the CLI never fetches a jwksUri. Returns what authz needs and what `-o json` prints as `authn`.
import { readFile } from 'node:fs/promises'
import { createJwtAuthenticator, createStaticJwksSource, type JwksSource } from '../../proxy/authn/index.js'
import { compileRequestAuthn, jwtRulesForWorkload, type JwtLocation, type PolicyDocument, type RequestAuth } from '../../proxy/policy/index.js'
import { UsageError } from './validate.js'

export interface JwtCheck {
  readonly authn: { readonly result: 'ok' | 'missing' | 'invalid'; readonly reason: string | null; readonly principal: string | null }
  readonly auth: RequestAuth | null
  /** Why, in words (never the token). */
  readonly detail: string
}

export interface JwtCheckInput {
  /** --jwt; undefined with --jwks alone: the request is authenticated as given (no token: unauthenticated). */
  readonly token: string | undefined
  /** The request's own header lines (--header) and query (from --path), as the sidecar's authenticator reads them. */
  readonly rawHeaders: readonly string[]
  readonly query: string
  readonly jwksFile: string | undefined
  readonly policies: readonly PolicyDocument[]
  readonly rootNamespace: string
  readonly workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> }
  readonly now?: () => number
}

async function readJwks(file: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`--jwks: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  try {
    const v = JSON.parse(text) as { keys?: unknown }
    if (!Array.isArray(v.keys)) throw new Error('no keys')
    return v
  } catch {
    throw new UsageError(`--jwks: ${file} is not a JSON Web Key Set ({"keys": [...]})`)
  }
}

/** Raw request headers and query that put the token where the workload's rules look first. */
function present(token: string, locations: readonly JwtLocation[]): { rawHeaders: string[]; query: string } {
  const l = locations.find((x) => x.kind === 'header' && x.name === 'authorization') ?? locations[0]
  if (!l) return { rawHeaders: [], query: '' }
  if (l.kind === 'header') return { rawHeaders: [l.name, `${l.prefix}${token}`], query: '' }
  if (l.kind === 'param') return { rawHeaders: [], query: `?${encodeURIComponent(l.name)}=${encodeURIComponent(token)}` }
  return { rawHeaders: ['cookie', `${l.name}=${token}`], query: '' }
}

export async function checkJwt(o: JwtCheckInput): Promise<JwtCheck> {
  const rules = jwtRulesForWorkload(compileRequestAuthn(o.policies, { rootNamespace: o.rootNamespace }), o.workload).rules
  if (rules.length === 0) {
    return { authn: { result: 'missing', reason: null, principal: null }, auth: null, detail: 'no RequestAuthentication applies to this workload: the token is not looked at' }
  }
  const fromFile = o.jwksFile !== undefined ? createStaticJwksSource(await readJwks(o.jwksFile), `--jwks ${o.jwksFile}`) : null
  const none = (uri: string): JwksSource => ({ description: `${uri} (not fetched by the CLI: pass --jwks)`, current: () => null, refresh: async () => null })
  const a = createJwtAuthenticator(
    rules,
    { cacheSize: 0, sourceFor: (r) => (r.jwks ? createStaticJwksSource(r.jwks) : (fromFile ?? none(r.jwksUri!))) },
    { clock: { now: o.now ?? (() => Date.now()) } },
  )
  // --jwt adds the token where the rules look first to what the request already carries; a copy the
  // request also carries is the sidecar's problem too (a repeated location is refused with 401).
  const t = o.token !== undefined ? present(o.token, rules.flatMap((r) => r.locations)) : { rawHeaders: [], query: '' }
  const query = t.query === '' ? o.query : o.query === '' ? t.query : `${o.query}&${t.query.slice(1)}`
  const out = await a.authenticate({ rawHeaders: [...o.rawHeaders, ...t.rawHeaders], query })
  if (out.result === 'ok') return { authn: { result: 'ok', reason: null, principal: out.auth.principal }, auth: out.auth, detail: `verified by ${out.tokens[0]!.rule.id}` }
  if (out.result === 'missing') return { authn: { result: 'missing', reason: null, principal: null }, auth: null, detail: 'no token in a configured location: the request is unauthenticated' }
  return { authn: { result: 'invalid', reason: out.code, principal: null }, auth: null, detail: out.detail }
}
