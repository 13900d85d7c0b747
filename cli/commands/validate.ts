// `remora validate -f <file|dir>...`: offline validation with the same code the control plane and
// the sidecar run. Exit 0 when valid (warnings allowed), 2 on any error or bad input.
import { parseArgs } from 'node:util'
import { readPolicySources } from '../../proxy/config/policy-files.js'
import {
  DEFAULT_PATH_NORMALIZATION,
  DEFAULT_ROOT_NAMESPACE,
  PATH_NORMALIZATIONS,
  formatPolicyIssue,
  validateDocuments,
  type DocumentsValidation,
  type PathNormalization,
  type PolicyIssue,
} from '../../proxy/policy/index.js'
import { hasCode } from '../../proxy/errors/index.js'
import { UsageError, isUsageError } from '../errors.js'

const USAGE = `usage: remora validate -f <file|dir>... [--trust-domain <td>]... [--root-namespace ${DEFAULT_ROOT_NAMESPACE}]
                       [--path-normalization ${PATH_NORMALIZATIONS.join('|')}] [-o text|json]

Validates AuthorizationPolicy and PeerAuthentication documents (YAML, multi-document, or JSON).
Errors go to stdout as "file#doc:line: path: message (CODE)", warnings to stderr.
Exit codes: 0 valid (warnings allowed), 2 errors or bad input.`

export { UsageError }

export function parseOutput(v: string | undefined): 'text' | 'json' {
  if (v === undefined || v === 'text') return 'text'
  if (v === 'json') return 'json'
  throw new UsageError(`-o must be text or json, got "${v}"`)
}

export function parsePathNormalization(v: string | undefined): PathNormalization {
  if (v === undefined) return DEFAULT_PATH_NORMALIZATION
  const up = v.toUpperCase()
  if (!(PATH_NORMALIZATIONS as readonly string[]).includes(up)) throw new UsageError(`--path-normalization must be one of ${PATH_NORMALIZATIONS.join(', ')}, got "${v}"`)
  return up as PathNormalization
}

export interface LoadOptions {
  readonly files: readonly string[]
  readonly trustDomains?: readonly string[]
  readonly rootNamespace?: string
  readonly pathNormalization?: PathNormalization
}

/** Read and validate policy files; file errors become UsageError (exit 2). */
export async function loadPolicies(opts: LoadOptions): Promise<DocumentsValidation> {
  if (opts.files.length === 0) throw new UsageError('-f <file|dir> is required')
  let sources
  try {
    sources = await readPolicySources(opts.files)
  } catch (err) {
    if (hasCode(err, 'REMORA_ERR_POLICY_FILES')) throw new UsageError((err as Error).message)
    throw err
  }
  return validateDocuments(sources, {
    trustDomains: opts.trustDomains,
    rootNamespace: opts.rootNamespace,
    pathNormalization: opts.pathNormalization,
  })
}

export function issueJson(i: PolicyIssue): Record<string, unknown> {
  return { source: i.source ?? null, doc: i.doc ?? null, line: i.line ?? null, path: i.path, code: i.code, severity: i.severity, message: i.message }
}

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        file: { type: 'string', short: 'f', multiple: true },
        'trust-domain': { type: 'string', multiple: true },
        'root-namespace': { type: 'string' },
        'path-normalization': { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora validate: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const output = parseOutput(values.output)
    const result = await loadPolicies({
      files: values.file ?? [],
      trustDomains: values['trust-domain'],
      rootNamespace: values['root-namespace'],
      pathNormalization: parsePathNormalization(values['path-normalization']),
    })
    const valid = result.errors.length === 0
    if (output === 'json') {
      console.log(
        JSON.stringify(
          {
            valid,
            policies: result.policies.map((p) => ({ kind: p.kind, policy: `${p.metadata.namespace}/${p.metadata.name}` })),
            errors: result.errors.map(issueJson),
            warnings: result.warnings.map(issueJson),
          },
          null,
          2,
        ),
      )
    } else {
      for (const w of result.warnings) console.error(`warning: ${formatPolicyIssue(w)}`)
      for (const e of result.errors) console.log(formatPolicyIssue(e))
      if (valid) {
        const kinds = new Map<string, number>()
        for (const p of result.policies) kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1)
        const summary = [...kinds].map(([k, n]) => `${n} ${k}`).join(', ') || 'no policies'
        console.log(`valid: ${summary}${result.warnings.length ? `, ${result.warnings.length} warning(s)` : ''}`)
      } else {
        console.log(`invalid: ${result.errors.length} error(s)`)
      }
    }
    return valid ? 0 : 2
  } catch (err) {
    if (isUsageError(err)) {
      console.error(`remora validate: ${err.message}\n\n${USAGE}`)
      return 2
    }
    throw err
  }
}
