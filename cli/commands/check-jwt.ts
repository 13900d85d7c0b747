// `remora check --jwt` / `--jwks`: the authenticator the sidecar builds for the workload (same
// algorithm pinning and claim checks), with keys from `--jwks` or the rules' inline `jwks` (the CLI
// never fetches a jwksUri), and the request carrying --jwt; check-request.ts runs it in the
// sidecar's authnJwt stage. jwtCheckFrom turns the outcome into what `-o json` prints as `authn`.
import { readFile } from 'node:fs/promises'
import { createJwtAuthenticator, createStaticJwksSource, type JwksSource, type JwtAuthenticator, type JwtOutcome } from '../../proxy/authn/index.js'
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
  readonly jwksFile: string | undefined
  /** The request's own header lines (Host first) and target (--path), before the token is added. */
  readonly rawHeaders: readonly string[]
  readonly target: string
  readonly policies: readonly PolicyDocument[]
  readonly rootNamespace: string
  readonly workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> }
  readonly now?: () => number
}

/** What the sidecar's authnJwt stage runs with, and the request carrying --jwt where the rules look first. */
export interface JwtSetup {
  /** null: no RequestAuthentication applies (the sidecar leaves the stage out). */
  readonly authenticator: JwtAuthenticator | null
  readonly rawHeaders: readonly string[]
  readonly target: string
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

/** The request with the token put where the workload's rules look first (Authorization if configured). */
function present(token: string, locations: readonly JwtLocation[], rawHeaders: readonly string[], target: string): { rawHeaders: string[]; target: string } {
  const l = locations.find((x) => x.kind === 'header' && x.name === 'authorization') ?? locations[0]
  if (!l) return { rawHeaders: [...rawHeaders], target }
  if (l.kind === 'header') return { rawHeaders: [...rawHeaders, l.name, `${l.prefix}${token}`], target }
  if (l.kind === 'cookie') return { rawHeaders: [...rawHeaders, 'cookie', `${l.name}=${token}`], target }
  // A query parameter goes before any fragment, after the query the --path already has.
  const hash = target.indexOf('#')
  const [head, frag] = hash === -1 ? [target, ''] : [target.slice(0, hash), target.slice(hash)]
  return { rawHeaders: [...rawHeaders], target: `${head}${head.includes('?') ? '&' : '?'}${encodeURIComponent(l.name)}=${encodeURIComponent(token)}${frag}` }
}

export async function prepareJwt(o: JwtCheckInput): Promise<JwtSetup> {
  const rules = jwtRulesForWorkload(compileRequestAuthn(o.policies, { rootNamespace: o.rootNamespace }), o.workload).rules
  if (rules.length === 0) return { authenticator: null, rawHeaders: o.rawHeaders, target: o.target }
  const fromFile = o.jwksFile !== undefined ? createStaticJwksSource(await readJwks(o.jwksFile), `--jwks ${o.jwksFile}`) : null
  const none = (uri: string): JwksSource => ({ description: `${uri} (not fetched by the CLI: pass --jwks)`, current: () => null, refresh: async () => null })
  const authenticator = createJwtAuthenticator(
    rules,
    { cacheSize: 0, sourceFor: (r) => (r.jwks ? createStaticJwksSource(r.jwks) : (fromFile ?? none(r.jwksUri!))) },
    { clock: { now: o.now ?? (() => Date.now()) } },
  )
  // --jwt adds the token to what the request already carries; a copy the request also carries is
  // the sidecar's problem too (a repeated location is refused with 401).
  const r = o.token !== undefined ? present(o.token, rules.flatMap((x) => x.locations), o.rawHeaders, o.target) : { rawHeaders: o.rawHeaders, target: o.target }
  return { authenticator, ...r }
}

/** The authnJwt stage's outcome (null: the stage never ran, or is left out) as check reports it. */
export function jwtCheckFrom(setup: JwtSetup, out: JwtOutcome | null): JwtCheck {
  if (setup.authenticator === null) {
    return { authn: { result: 'missing', reason: null, principal: null }, auth: null, detail: 'no RequestAuthentication applies to this workload: the token is not looked at' }
  }
  if (out === null) return { authn: { result: 'missing', reason: null, principal: null }, auth: null, detail: 'the sidecar answers before authentication' }
  if (out.result === 'ok') return { authn: { result: 'ok', reason: null, principal: out.auth.principal }, auth: out.auth, detail: `verified by ${out.tokens[0]!.rule.id}` }
  if (out.result === 'missing') return { authn: { result: 'missing', reason: null, principal: null }, auth: null, detail: 'no token in a configured location: the request is unauthenticated' }
  return { authn: { result: 'invalid', reason: out.code, principal: null }, auth: null, detail: out.detail }
}
