// `remora status`: each sidecar's identity, address, ACKed version, last NACK and its error, cert
// expiry and connected-since, and how many run the control plane's current version.
import { parseArgs } from 'node:util'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, apiFailure, callApi, resolveTarget } from '../admin-client.js'

const USAGE = `usage: remora status [-o table|json]

${ADMIN_FLAGS_HELP}`

interface Row {
  identity: string
  address: string
  replica: string
  connected: boolean
  connectedSince: string | null
  versionAcked: string | null
  lastNack: { version: string; errors: string[]; at: string } | null
  certExpiry: string | null
}

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({ args: argv, options: { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true }).values
  } catch (err) {
    console.error(`remora status: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const r = await callApi(resolveTarget(values), 'GET', '/v1/status')
    if (r.status !== 200) return apiFailure('status', r)
    if (values.output === 'json') {
      console.log(JSON.stringify(r.json, null, 2))
      return 0
    }
    const version = r.json.version as string | null
    const rows = r.json.sidecars as Row[]
    const connected = rows.filter((s) => s.connected)
    const synced = connected.filter((s) => s.versionAcked === version)
    console.log(`control plane version ${version ?? '-'}: ${synced.length}/${connected.length} connected sidecars ACKed it (replicas: ${(r.json.replicas as { id: string }[]).map((x) => x.id).join(', ')})`)
    for (const e of (r.json.policyErrors as string[]) ?? []) console.log(`store policy error (last good set kept): ${e}`)
    for (const q of (r.json.quarantine as { identity: string; reason: string; by: string; since: string }[] | undefined) ?? []) console.log(`QUARANTINED ${q.identity} since ${q.since} by ${q.by}${q.reason ? `: ${q.reason}` : ''}`)
    console.log(['IDENTITY'.padEnd(48), 'ADDRESS'.padEnd(21), 'ACKED'.padEnd(17), 'SYNC'.padEnd(8), 'CERT EXPIRY'.padEnd(25), 'CONNECTED SINCE'].join(' '))
    for (const s of rows) {
      const sync = !s.connected ? 'gone' : s.versionAcked === version ? 'synced' : 'stale'
      console.log([s.identity.padEnd(48), s.address.padEnd(21), (s.versionAcked ?? '-').padEnd(17), sync.padEnd(8), (s.certExpiry ?? '-').padEnd(25), s.connected ? (s.connectedSince ?? '-') : '-'].join(' '))
      if (s.lastNack) console.log(`    last NACK of ${s.lastNack.version} at ${s.lastNack.at}: ${s.lastNack.errors.join(' | ')}`)
    }
    return 0
  } catch (err) {
    console.error(`remora status: ${(err as Error).message}`)
    return 1
  }
}
