// `remora delete <kind> <name> -n <namespace>`: removes one policy; every sidecar gets the new snapshot.
import { parseArgs } from 'node:util'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, AdminUsageError, apiFailure, callApi, KIND_ALIASES, resolveTarget } from '../admin-client.js'
import { isUsageError } from '../errors.js'

const USAGE = `usage: remora delete <kind> <name> -n <namespace>

${ADMIN_FLAGS_HELP}`

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { namespace: { type: 'string', short: 'n' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true, allowPositionals: true })
  } catch (err) {
    console.error(`remora delete: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const [kindArg, name] = positionals
    const kind = kindArg ? KIND_ALIASES[kindArg.toLowerCase()] : undefined
    if (!kind || !name) throw new AdminUsageError('expected <kind> <name>')
    if (!values.namespace) throw new AdminUsageError('-n <namespace> is required')
    const r = await callApi(resolveTarget(values), 'DELETE', `/v1/policies/${kind}/${encodeURIComponent(values.namespace)}/${encodeURIComponent(name)}`)
    if (r.status !== 200) return apiFailure('delete', r)
    console.log(`${kind.toLowerCase()} ${values.namespace}/${name} deleted\nversion ${String(r.json.version)}`)
    return 0
  } catch (err) {
    console.error(`remora delete: ${(err as Error).message}`)
    return isUsageError(err) ? 2 : 1
  }
}
