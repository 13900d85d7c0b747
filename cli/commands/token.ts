// `remora token create --namespace NS --service-account SA [--ttl 1h]`: a join token (JWT signed by
// the control plane) for exactly that identity. The token alone goes to stdout, so it can be piped
// into a file or a secret; what it is for goes to stderr.
import { parseArgs } from 'node:util'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, AdminUsageError, apiFailure, callApi, resolveTarget } from '../admin-client.js'
import { isUsageError } from '../errors.js'

const USAGE = `usage: remora token create --namespace <ns> --service-account <sa> [--ttl 1h]

${ADMIN_FLAGS_HELP}`

function ttlSeconds(v: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(v)
  if (!m) throw new AdminUsageError('--ttl: expected a duration like 10m, 1h, 7d')
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd']
}

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { namespace: { type: 'string', short: 'n' }, 'service-account': { type: 'string' }, ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true, allowPositionals: true })
  } catch (err) {
    console.error(`remora token: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    if (positionals[0] !== 'create' || positionals.length !== 1) throw new AdminUsageError(`expected "token create"\n\n${USAGE}`)
    if (!values.namespace || !values['service-account']) throw new AdminUsageError('--namespace and --service-account are required')
    const r = await callApi(resolveTarget(values), 'POST', '/v1/tokens', { namespace: values.namespace, serviceAccount: values['service-account'], ttlSeconds: ttlSeconds(values.ttl ?? '1h') })
    if (r.status !== 200) return apiFailure('token', r)
    console.error(`join token for ${String(r.json.spiffeId)}, expires ${String(r.json.expiresAt)}`)
    console.log(String(r.json.token))
    return 0
  } catch (err) {
    console.error(`remora token: ${(err as Error).message}`)
    return isUsageError(err) ? 2 : 1
  }
}
