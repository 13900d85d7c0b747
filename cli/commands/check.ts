// `remora check`: would this request be allowed? Offline, with the same validate → compile →
// selectForWorkload → evaluate path the sidecar runs, plus why each applicable policy did or did
// not match. Exit 0 allow, 3 deny (including a request the sidecar would reject with 400), 2 bad input.
import { parseArgs } from 'node:util'
import {
  DEFAULT_ROOT_NAMESPACE,
  PATH_NORMALIZATIONS,
  compile,
  explain,
  formatPolicyIssue,
  mtlsModeFor,
  selectForWorkload,
  type Decision,
  type RequestAuth,
  type RequestFacts,
} from '../../proxy/policy/index.js'
import { UsageError, issueJson, loadPolicies, parseOutput, parsePathNormalization } from './validate.js'
import { jwtCheckFrom, prepareJwt } from './check-jwt.js'
import { validateDocuments, type DocumentsValidation, type PathNormalization, type PolicySource } from '../../proxy/policy/index.js'
import { ADMIN_FLAGS, callApi, resolveTarget, type AdminTarget } from '../admin-client.js'
import { parseSpiffeId } from '../../proxy/identity/index.js'
import { checkRequestView } from './check-request.js'
import { isUsageError } from '../errors.js'

async function loadLivePolicies(t: AdminTarget, o: { trustDomains?: string[]; rootNamespace: string; pathNormalization: PathNormalization }): Promise<DocumentsValidation> {
  const r = await callApi(t, 'GET', '/v1/sources')
  if (r.status !== 200) throw new UsageError(`--server: ${r.json.error?.code ?? r.status}: ${r.json.error?.message ?? 'request failed'}`)
  return validateDocuments(r.json.sources as PolicySource[], { trustDomains: o.trustDomains ?? [String(r.json.trustDomain)], rootNamespace: o.rootNamespace, pathNormalization: o.pathNormalization })
}

const USAGE = `usage: remora check (-f <file|dir>... | --server URL [--token T --ca FILE]) --dest-namespace <ns> [--dest-labels k=v[,k=v]] --method <M> --path <path>
                    [--source-principal spiffe://<td>/ns/<ns>/sa/<sa>] [--source-ip 10.1.2.3] [--remote-ip <ip>]
                    [--host <authority>] [--port 80] [--dest-ip <ip>] [--sni <name>] [--header 'name: value']...
                    [--request-principal <iss>/<sub>] [--claims '{"groups":["admin"]}']
                    [--jwt <token>] [--jwks <jwks.json>]
                    [--root-namespace ${DEFAULT_ROOT_NAMESPACE}] [--path-normalization ${PATH_NORMALIZATIONS.join('|')}]
                    [-o text|json]

Defaults: --source-ip 127.0.0.1, --port 80, --host <app label>.<dest-namespace> (or localhost); no
--source-principal means a plaintext caller. --path may carry a query; it is normalized as the
sidecar would (default MERGE_SLASHES) and a path the sidecar rejects is reported as status 400.
The request goes through the sidecar's own inbound stages (sanitize, JWT authentication) before
authorization, so policies see the headers the sidecar's authz sees: --header given twice is one
repeated header; x-remora-* and x-envoy-* headers are dropped as at the sidecar; --host is the Host
header (--header host is refused).
--jwt runs the workload's RequestAuthentication (from the policies given) on the token as the sidecar
would: keys from --jwks or the rule's inline jwks, never fetched; an invalid token is status 401.
--jwks without --jwt runs it on the request as given: with no token (in --header or --path's query)
the request is unauthenticated, as the sidecar decides it (403 where a principal is required).
Each flag not marked ... is given once. Exit codes: 0 allow, 3 deny (401, 403 or 400), 2 bad input
or invalid policies.
remora check --replay [-f ...] decides the recorded traffic instead (remora check --replay --help).`

function parseLabels(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (!v) return out
  for (const pair of v.split(',')) {
    if (pair.trim() === '') continue
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new UsageError(`--dest-labels: "${pair}" is not key=value`)
    const k = pair.slice(0, eq).trim()
    // A workload has one value per label: a second one would silently decide which policies apply.
    if (k in out) throw new UsageError(`--dest-labels: ${k} is given twice`)
    out[k] = pair.slice(eq + 1).trim()
  }
  return out
}

// RFC 9110 field names (tchar) and values without CR, LF or NUL: what node:http and llhttp accept.
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const BAD_VALUE = /[\r\n\0]/

/** --header lines as Node's `req.rawHeaders`: name, value, … in the order given. */
function parseHeaders(list: readonly string[] | undefined): string[] {
  const raw: string[] = []
  for (const h of list ?? []) {
    const colon = h.indexOf(':')
    if (colon <= 0) throw new UsageError(`--header: "${h}" is not "name: value"`)
    const name = h.slice(0, colon).trim()
    // llhttp strips the value's surrounding spaces and tabs, nothing else.
    const value = h.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (!FIELD_NAME.test(name)) throw new UsageError(`--header: "${name}" is not a header name`)
    if (name.toLowerCase() === 'host') throw new UsageError('--header host: give the authority with --host (a request has one Host)')
    if (BAD_VALUE.test(value)) throw new UsageError(`--header: the value of ${name} carries CR, LF or NUL`)
    raw.push(name, value)
  }
  return raw
}

/**
 * `parseArgs` keeps the last of a repeated single-valued flag. For a decision tool that is a silent
 * wrong answer (`--jwt A --jwt B` checks B only), so a repeat is an error.
 */
function rejectRepeats(tokens: readonly { kind: string; name?: string; rawName?: string }[], options: Readonly<Record<string, { type: string; multiple?: boolean }>>): void {
  const seen = new Set<string>()
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined || options[t.name]?.multiple) continue
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given twice (only --header, -f and --trust-domain repeat)`)
    seen.add(t.name)
  }
}

/** The request as `-o json` prints it: credentials the caller passed as headers are not echoed. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie'])
function printable(facts: RequestFacts | null): RequestFacts | null {
  if (facts === null) return null
  const headers: Record<string, string | string[] | undefined> = {}
  for (const [k, v] of Object.entries(facts.request.headers)) headers[k] = CREDENTIAL_HEADERS.has(k) ? '[redacted]' : v
  return { ...facts, request: { ...facts.request, headers } }
}

const SPIFFE = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/

function parsePrincipal(v: string | undefined): { principal: string | null; namespace: string | null } {
  if (v === undefined || v === '') return { principal: null, namespace: null }
  const uri = v.startsWith('spiffe://') ? v : `spiffe://${v}`
  const m = SPIFFE.exec(uri)
  if (!m || m[2]!.split('/').some((s) => s === '.' || s === '..')) throw new UsageError(`--source-principal: "${v}" is not a SPIFFE ID`)
  const ns = /^\/ns\/([^/]+)\/sa\/[^/]+$/.exec(m[2]!)
  return { principal: uri, namespace: ns ? ns[1]! : null }
}

function parseAuth(principal: string | undefined, claimsJson: string | undefined): RequestAuth | null {
  if (principal === undefined) {
    if (claimsJson !== undefined) throw new UsageError('--claims needs --request-principal <iss>/<sub> (a validated JWT has both)')
    return null
  }
  const slash = principal.lastIndexOf('/')
  if (slash <= 0 || slash === principal.length - 1) throw new UsageError(`--request-principal: "${principal}" is not <iss>/<sub>`)
  let claims: Record<string, unknown> = {}
  if (claimsJson !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(claimsJson)
    } catch (err) {
      throw new UsageError(`--claims is not JSON: ${(err as Error).message}`)
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('--claims must be a JSON object')
    claims = parsed as Record<string, unknown>
  }
  claims = { iss: principal.slice(0, slash), sub: principal.slice(slash + 1), ...claims }
  const aud = claims.aud
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : []
  const azp = claims.azp
  return { principal, audiences, presenter: typeof azp === 'string' ? azp : null, claims }
}

function parsePortArg(v: string | undefined): number {
  if (v === undefined) return 80
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 65535) throw new UsageError(`--port: "${v}" is not a port number`)
  return Number(v)
}

const OPTIONS = {
  file: { type: 'string', short: 'f', multiple: true },
  'dest-namespace': { type: 'string' },
  'dest-labels': { type: 'string' },
  'source-principal': { type: 'string' },
  'source-ip': { type: 'string' },
  'remote-ip': { type: 'string' },
  method: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'dest-ip': { type: 'string' },
  sni: { type: 'string' },
  path: { type: 'string' },
  header: { type: 'string', multiple: true },
  'request-principal': { type: 'string' },
  claims: { type: 'string' },
  jwt: { type: 'string' },
  jwks: { type: 'string' },
  'trust-domain': { type: 'string', multiple: true },
  'root-namespace': { type: 'string' },
  'path-normalization': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
  ...ADMIN_FLAGS,
} as const

export async function run(argv: string[]): Promise<number> {
  // --replay: the recorded traffic instead of one request (its own flags).
  if (argv.includes('--replay')) return (await import('./check-replay.js')).run(argv)
  let values
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true, tokens: true })
    rejectRepeats(parsed.tokens, OPTIONS)
    values = parsed.values
  } catch (err) {
    console.error(`remora check: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const output = parseOutput(values.output)
    const mode = parsePathNormalization(values['path-normalization'])
    const namespace = values['dest-namespace']
    if (!namespace) throw new UsageError('--dest-namespace is required')
    if (!values.method) throw new UsageError('--method is required')
    if (values.path === undefined) throw new UsageError('--path is required')
    const labels = parseLabels(values['dest-labels'])
    const src = parsePrincipal(values['source-principal'])
    const port = parsePortArg(values.port)
    const headerLines = parseHeaders(values.header)
    const auth = parseAuth(values['request-principal'], values.claims)
    const rootNamespace = values['root-namespace'] ?? DEFAULT_ROOT_NAMESPACE
    // --server: the live policy set from the control plane, through the same validate → compile path.
    const loaded =
      values.server !== undefined
        ? await loadLivePolicies(resolveTarget(values), { trustDomains: values['trust-domain'], rootNamespace, pathNormalization: mode })
        : await loadPolicies({ files: values.file ?? [], trustDomains: values['trust-domain'], rootNamespace, pathNormalization: mode })
    if (loaded.errors.length > 0) {
      for (const e of loaded.errors) console.error(formatPolicyIssue(e))
      console.error(`remora check: the policies are invalid (${loaded.errors.length} error(s)); run remora validate`)
      return 2
    }
    const wp = selectForWorkload(compile(loaded.policies, { rootNamespace }), { namespace, labels })
    const authn = values.jwt !== undefined || values.jwks !== undefined
    if (authn && values['request-principal'] !== undefined) throw new UsageError(`${values.jwt !== undefined ? '--jwt' : '--jwks'} and --request-principal are exclusive: JWT authentication gives the principal`)
    // Host first, as clients send it; the sidecar's sanitize stage takes the authority from it.
    const authority = values.host ?? (labels.app ? `${labels.app}.${namespace}` : 'localhost')
    // --jwt, or --jwks alone (the no-token row of a token matrix): the workload's authenticator in
    // the sidecar's authnJwt stage, on the request's headers and query; no token is unauthenticated.
    const jwt = authn
      ? await prepareJwt({ token: values.jwt, jwksFile: values.jwks, rawHeaders: ['host', authority, ...headerLines], target: values.path, policies: loaded.policies, rootNamespace, workload: { namespace, labels } })
      : null
    const peerId = src.principal !== null ? parseSpiffeId(src.principal) : null
    const view = await checkRequestView({
      method: values.method,
      target: jwt?.target ?? values.path,
      rawHeaders: jwt?.rawHeaders ?? ['host', authority, ...headerLines],
      peer: peerId ? { ...peerId, certHash: '' } : null,
      sourceIp: values['source-ip'] ?? '127.0.0.1',
      destinationPort: port,
      pathNormalization: mode,
      authenticator: jwt?.authenticator ?? null,
    })
    const jwtCheck = jwt ? jwtCheckFrom(jwt, view.jwt) : null
    let facts: RequestFacts | null = null
    let decision: Decision & { status: number }
    let policies: ReturnType<typeof explain>['policies'] = []
    if (!view.ok) {
      // As the sidecar: a request it cannot take (path, Host) is answered first, then a bad token.
      const reason = view.status === 401 && jwtCheck ? `rejected by JWT authentication (401): ${jwtCheck.authn.reason}: ${jwtCheck.detail}` : `rejected before authorization (${view.status}): ${view.reason}`
      decision = { action: 'DENY', status: view.status, policy: null, ruleIndex: null, reason, dryRun: [], audit: null }
    } else {
      const f = view.facts
      facts = {
        source: { ...f.source, ...(values['remote-ip'] !== undefined ? { remoteIp: values['remote-ip'] } : {}) },
        destination: { ...f.destination, ...(values['dest-ip'] !== undefined ? { ip: values['dest-ip'] } : {}) },
        request: {
          ...f.request,
          ...(values.sni !== undefined ? { sni: values.sni } : {}),
          // --request-principal/--claims stand in for a JWT the sidecar verified (no authnJwt stage then).
          auth: authn ? f.request.auth : auth,
        },
      }
      const ex = explain(wp, facts)
      decision = { ...ex.decision, status: ex.decision.action === 'ALLOW' ? 200 : 403 }
      policies = ex.policies
    }
    const mtls = mtlsModeFor(wp, port)
    if (output === 'json') {
      console.log(
        JSON.stringify(
          {
            decision: decision.action,
            status: decision.status,
            policy: decision.policy,
            rule: decision.ruleIndex,
            reason: decision.reason,
            dryRun: decision.dryRun,
            audit: decision.audit,
            policies: policies.map((p) => ({ policy: p.policy, action: p.action, dryRun: p.dryRun, matched: p.matched, rule: p.ruleIndex, why: p.summary })),
            ...(jwtCheck ? { authn: jwtCheck.authn } : {}),
            mtls: { mode: mtls, policy: wp.peerAuthn.policy },
            request: printable(facts),
            warnings: loaded.warnings.map(issueJson),
          },
          null,
          2,
        ),
      )
    } else {
      for (const w of loaded.warnings) console.error(`warning: ${formatPolicyIssue(w)}`)
      console.log(`${decision.action} (${decision.status})  ${decision.reason}`)
      if (jwtCheck) console.log(`authn:    ${jwtCheck.authn.result}${jwtCheck.authn.principal ? ` as ${jwtCheck.authn.principal}` : ''} (${jwtCheck.detail})`)
      if (facts) {
        const from = facts.source.principal ?? 'a plaintext caller'
        console.log(`request:  ${facts.request.method} ${facts.request.host} ${facts.request.path} (port ${port}) from ${from} at ${facts.source.ip}`)
      }
      const sel = Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
      console.log(`workload: ${namespace}${sel ? ` {${sel}}` : ''}; mTLS ${mtls}${wp.peerAuthn.policy ? ` (${wp.peerAuthn.policy})` : ' (default)'}`)
      if (policies.length === 0 && facts) console.log('policies: none applies to this workload')
      for (const p of policies.filter((x) => !x.dryRun)) console.log(`  ${p.action.padEnd(5)} ${p.policy}: ${p.summary}`)
      const dry = policies.filter((x) => x.dryRun)
      if (dry.length) {
        console.log('dry run (not enforced):')
        for (const p of dry) console.log(`  ${p.action.padEnd(5)} ${p.policy}: ${p.summary}`)
      }
      if (decision.audit) console.log(`audit: ${decision.audit.policy} rules[${decision.audit.ruleIndex}]`)
    }
    return decision.action === 'ALLOW' ? 0 : 3
  } catch (err) {
    if (isUsageError(err)) {
      console.error(`remora check: ${err.message}\n\n${USAGE}`)
      return 2
    }
    throw err
  }
}
