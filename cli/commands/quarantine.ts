// `remora quarantine SPIFFE_ID [--reason ...]` and `remora release SPIFFE_ID` (and `remora
// quarantine --list`): cut one workload identity off the mesh, both as caller and as callee, in one
// call; it returns when every connected sidecar ACKed the change, with the time it took and any
// sidecar that did not.
import { userInfo, hostname } from 'node:os'
import { parseArgs } from 'node:util'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, apiFailure, callApi, resolveTarget } from '../admin-client.js'
import { parseDuration } from '../../proxy/snapshot/index.js'

const USAGE = `usage: remora quarantine SPIFFE_ID [--reason TEXT] [--by NAME] [--wait 10s]
       remora quarantine --list
       remora release SPIFFE_ID [--by NAME] [--wait 10s]

quarantine: every sidecar denies SPIFFE_ID before any policy, as caller and as callee, and closes
its open connections; the identity's own sidecar refuses everything; its certificate renewals are
refused. Returns when every connected sidecar ACKed (exit 0), or after --wait with the sidecars
that did not (exit 1). --by defaults to user@host (recorded in status with --reason).

${ADMIN_FLAGS_HELP}`

interface Converged {
  version: string | null
  convergedMs: number
  acked: number
  pending: { node: string; identity: string; versionAcked: string | null }[]
}

function report(what: string, c: Converged): number {
  if (c.pending.length === 0) {
    console.log(`${what}: version ${c.version} ACKed by all ${c.acked} connected sidecars in ${c.convergedMs} ms`)
    return 0
  }
  console.log(`${what}: version ${c.version} ACKed by ${c.acked} sidecars in ${c.convergedMs} ms; ${c.pending.length} did not ACK yet:`)
  for (const p of c.pending) console.log(`  ${p.identity} (${p.node}) still on ${p.versionAcked ?? '-'}`)
  return 1
}

export async function run(argv: string[], name = 'quarantine'): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { reason: { type: 'string' }, by: { type: 'string' }, wait: { type: 'string' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...ADMIN_FLAGS }, strict: true })
  } catch (err) {
    console.error(`remora ${name}: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const target = resolveTarget(values)
  try {
    if (values.list) {
      const r = await callApi(target, 'GET', '/v1/quarantine')
      if (r.status !== 200) return apiFailure(name, r)
      const list = r.json.quarantine as { identity: string; reason: string; by: string; since: string }[]
      if (list.length === 0) console.log('nothing is quarantined')
      for (const q of list) console.log(`${q.identity}  since ${q.since}  by ${q.by}${q.reason ? `: ${q.reason}` : ''}`)
      return 0
    }
    if (positionals.length !== 1) {
      console.error(`remora ${name}: expected one SPIFFE ID\n\n${USAGE}`)
      return 2
    }
    let waitMs = 10_000
    if (values.wait !== undefined) {
      const w = parseDuration(values.wait)
      if (w === null) {
        console.error(`remora ${name}: --wait: expected a duration like 10s`)
        return 2
      }
      waitMs = w
    }
    const by = values.by ?? `${userInfo().username}@${hostname()}`
    const identity = positionals[0]!
    if (name === 'release') {
      const r = await callApi(target, 'POST', '/v1/release', { identity, by, waitMs })
      if (r.status !== 200) return apiFailure(name, r)
      return report(`released ${identity}`, r.json as unknown as Converged)
    }
    const r = await callApi(target, 'POST', '/v1/quarantine', { identity, by, waitMs, reason: values.reason ?? '' })
    if (r.status !== 200) return apiFailure(name, r)
    const q = r.json.quarantined as { since: string; by: string; reason: string }
    if (r.json.already) console.log(`${identity} was already quarantined (since ${q.since} by ${q.by})`)
    return report(`quarantined ${identity}`, r.json as unknown as Converged)
  } catch (err) {
    console.error(`remora ${name}: ${(err as Error).message}`)
    return 1
  }
}
