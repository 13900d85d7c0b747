// `remora get <kind> [name] [-n namespace] [-o yaml|json]`: policies as the control plane stores them.
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, AdminUsageError, apiFailure, callApi, KIND_ALIASES, resolveTarget } from '../admin-client.js'
import { isUsageError } from '../errors.js'

const USAGE = `usage: remora get <authorizationpolicy|peerauthentication|requestauthentication|all> [name] [-n namespace] [-o table|yaml|json]

${ADMIN_FLAGS_HELP}`

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true, allowPositionals: true })
  } catch (err) {
    console.error(`remora get: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const [kindArg, name] = positionals
    if (!kindArg) throw new AdminUsageError('a kind is required')
    const kind = kindArg.toLowerCase() === 'all' ? null : KIND_ALIASES[kindArg.toLowerCase()]
    if (kind === undefined) throw new AdminUsageError(`unknown kind "${kindArg}"`)
    const q = new URLSearchParams()
    if (kind) q.set('kind', kind)
    if (values.namespace) q.set('namespace', values.namespace)
    if (name) q.set('name', name)
    const r = await callApi(resolveTarget(values), 'GET', `/v1/policies?${q}`)
    if (r.status !== 200) return apiFailure('get', r)
    const items = r.json.items as { kind: string; namespace: string; name: string; doc: Record<string, unknown> }[]
    if (name && items.length === 0) {
      console.error(`remora get: ${kind ?? 'policy'} ${values.namespace ?? '*'}/${name} not found`)
      return 1
    }
    const out = values.output ?? 'table'
    if (out === 'json') console.log(JSON.stringify(items.map((i) => i.doc), null, 2))
    else if (out === 'yaml') console.log(items.map((i) => stringify(i.doc)).join('---\n'))
    else {
      console.log(['KIND'.padEnd(24), 'NAMESPACE'.padEnd(20), 'NAME'].join(' '))
      for (const i of items) console.log([i.kind.padEnd(24), i.namespace.padEnd(20), i.name].join(' '))
    }
    return 0
  } catch (err) {
    console.error(`remora get: ${(err as Error).message}`)
    return isUsageError(err) ? 2 : 1
  }
}
