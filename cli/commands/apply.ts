// `remora apply -f <file|dir>...`: sends the policies to the control plane, which validates them
// with the same code as `remora validate` and stores all of them or none. Exit 0 applied, 2 invalid
// (the store is unchanged), 1 for any other failure.
// `--preview`: nothing is applied; POST /v1/preview replays the recorded traffic against the
// policies in force and against them with these files applied, and the edges whose decision changes
// are printed. Exit 0, or 3 with --fail-on-new-denials when an observed edge would be newly denied.
import { parseArgs } from 'node:util'
import { readPolicySources } from '../../proxy/config/index.js'
import { formatPolicyIssue, type PolicyIssue } from '../../proxy/policy/index.js'
import type { PreviewChange } from '../../control-plane/replay/index.js'
import type { PolicySource } from '../../proxy/policy/index.js'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, AdminUsageError, apiFailure, callApi, parseSince, resolveTarget, type AdminTarget } from '../admin-client.js'
import { changeLine } from './replay-format.js'
import { hasCode } from '../../proxy/errors/index.js'
import { isUsageError } from '../errors.js'

const USAGE = `usage: remora apply -f <file|dir>... [--dry-run] [--server URL --token T --ca FILE]
       remora apply --preview -f <file|dir>... [--fail-on-new-denials] [--since 24h] [-n NAMESPACE]

--preview applies nothing: the control plane replays the traffic recorded in its retention window
(or --since) against the policies in force and against them with these files applied (a policy of
the same kind, namespace and name replaces the one in force), and prints each edge whose decision
changes: "newly denied: …" / "newly allowed: …" with its count and when it was last seen. An edge
recorded as a path template with {id} is evaluated with {id} = 0 and marked approximate.
Exit codes: 0 applied (or previewed), 2 invalid or bad usage (nothing applied), 3 with
--fail-on-new-denials when an observed edge would be newly denied, 1 any other failure.

${ADMIN_FLAGS_HELP}`

/** The exit code of a preview that finds an edge newly denied, with --fail-on-new-denials (a CI gate). */
export const EXIT_NEW_DENIALS = 3

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        file: { type: 'string', short: 'f', multiple: true },
        'dry-run': { type: 'boolean' },
        preview: { type: 'boolean' },
        'fail-on-new-denials': { type: 'boolean' },
        since: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        help: { type: 'boolean', short: 'h' },
        ...ADMIN_FLAGS,
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora apply: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    if (!values.file?.length) throw new AdminUsageError('-f <file|dir> is required')
    let sources
    try {
      sources = await readPolicySources(values.file)
    } catch (err) {
      if (hasCode(err, 'REMORA_ERR_POLICY_FILES')) throw new AdminUsageError((err as Error).message)
      throw err
    }
    if (sources.length === 0) throw new AdminUsageError('no policy files found')
    if (!values.preview && (values['fail-on-new-denials'] || values.since !== undefined || values.namespace !== undefined)) throw new AdminUsageError('--fail-on-new-denials, --since and -n go with --preview')
    if (values.preview && values['dry-run']) throw new AdminUsageError('--preview and --dry-run are exclusive (neither applies anything; --preview also replays the recorded traffic)')
    const t = resolveTarget(values)
    if (values.preview) return await preview(t, sources, { failOnNewDenials: values['fail-on-new-denials'] === true, since: values.since === undefined ? undefined : parseSince(values.since), namespace: values.namespace })
    const r = await callApi(t, 'POST', '/v1/apply', { sources, dryRun: values['dry-run'] === true })
    if (r.status === 422) {
      for (const i of (r.json.issues as PolicyIssue[]) ?? []) console.log(formatPolicyIssue(i))
      console.error(`remora apply: invalid: ${((r.json.issues as unknown[]) ?? []).length} error(s); nothing was applied`)
      return 2
    }
    if (r.status !== 200) return apiFailure('apply', r)
    for (const w of (r.json.warnings as PolicyIssue[]) ?? []) console.error(`warning: ${formatPolicyIssue(w)}`)
    for (const a of r.json.applied as { kind: string; namespace: string; name: string; result: string }[]) {
      console.log(`${a.kind.toLowerCase()} ${a.namespace}/${a.name} ${a.result}${values['dry-run'] ? ' (dry run)' : ''}`)
    }
    console.log(`version ${String(r.json.version)}`)
    return 0
  } catch (err) {
    if (isUsageError(err)) {
      console.error(`remora apply: ${err.message}`)
      return 2
    }
    console.error(`remora apply: ${(err as Error).message}`)
    return 1
  }
}

async function preview(t: AdminTarget, sources: PolicySource[], o: { failOnNewDenials: boolean; since: string | undefined; namespace: string | undefined }): Promise<number> {
  const r = await callApi(t, 'POST', '/v1/preview', { sources, ...(o.since ? { since: o.since } : {}), ...(o.namespace ? { namespace: o.namespace } : {}) })
  if (r.status === 422) {
    for (const i of (r.json.issues as PolicyIssue[]) ?? []) console.log(formatPolicyIssue(i))
    console.error(`remora apply: invalid: ${((r.json.issues as unknown[]) ?? []).length} error(s); nothing was applied`)
    return 2
  }
  if (r.status !== 200) return apiFailure('apply', r)
  for (const w of (r.json.warnings as PolicyIssue[]) ?? []) console.error(`warning: ${formatPolicyIssue(w)}`)
  const changes = r.json.changes as PreviewChange[]
  const window = r.json.window as { from: number; to: number }
  const denied = changes.filter((c) => c.after.action === 'DENY')
  const allowed = changes.filter((c) => c.after.action === 'ALLOW')
  for (const c of [...denied, ...allowed]) console.log(changeLine(c))
  const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
  console.log(
    `preview: ${denied.length} edge(s) newly denied, ${allowed.length} newly allowed; ${String(r.json.replayed)} edge(s) (${String(r.json.requests)} requests) replayed from ${iso(window.from)} to ${iso(window.to)} against version ${String(r.json.version)}; nothing was applied`,
  )
  return o.failOnNewDenials && denied.length > 0 ? EXIT_NEW_DENIALS : 0
}
