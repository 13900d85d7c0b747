// `remora apply -f <file|dir>...`: sends the policies to the control plane, which validates them
// with the same code as `remora validate` and stores all of them or none. Exit 0 applied, 2 invalid
// (the store is unchanged), 1 for any other failure.
import { parseArgs } from 'node:util'
import { readPolicySources } from '../../proxy/config/index.js'
import { formatPolicyIssue, type PolicyIssue } from '../../proxy/policy/index.js'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, AdminUsageError, apiFailure, callApi, resolveTarget } from '../admin-client.js'
import { hasCode } from '../../proxy/errors/index.js'
import { isUsageError } from '../errors.js'

const USAGE = `usage: remora apply -f <file|dir>... [--dry-run] [--server URL --token T --ca FILE]

${ADMIN_FLAGS_HELP}`

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({ args: argv, options: { file: { type: 'string', short: 'f', multiple: true }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true }).values
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
    const t = resolveTarget(values)
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
