// `remora check --replay [-f <file|dir>...] [-n NS] [--since 24h] [-o text|json]`: the recorded
// traffic (GET /v1/traffic) decided edge by edge by the given files alone, or by the policies in
// force without -f, with the same compile → selectForWorkload → evaluate path the sidecar runs
// (control-plane/replay). Prints every edge's decision and rule, and what was recorded when it
// differs. Exit 0 (a report; `remora apply --preview --fail-on-new-denials` is the gate), 2 bad
// input or invalid policies, 1 when the control plane cannot be read.
import { parseArgs } from 'node:util'
import { replay } from '../../control-plane/replay/index.js'
import { DEFAULT_ROOT_NAMESPACE, formatPolicyIssue, validateDocuments, type DocumentsValidation, type PolicySource } from '../../proxy/policy/index.js'
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, apiFailure, callApi, fetchTraffic, isApiReply, parseSince, resolveTarget } from '../admin-client.js'
import { isUsageError } from '../errors.js'
import { replayLine } from './replay-format.js'
import { issueJson, loadPolicies, parseOutput } from './validate.js'

const USAGE = `usage: remora check --replay [-f <file|dir>...] [-n NAMESPACE] [--since 24h] [--root-namespace ${DEFAULT_ROOT_NAMESPACE}] [-o text|json]
                    [--server URL --token T --ca FILE]

Replays the traffic the sidecars recorded (the control plane's retention window, or --since) against
the given files alone, or against the policies in force without -f, and prints each edge's decision
and the rule that made it, with what the sidecar recorded when that differs. Recorded edges carry
the caller, method, path template, port and protocol, not headers, tokens or addresses: a {id}
template is evaluated with {id} = 0 and marked approximate, and a rule on what was not recorded sees
nothing. Exit codes: 0 replayed, 2 bad input or invalid policies, 1 the control plane failed.

${ADMIN_FLAGS_HELP}`

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        replay: { type: 'boolean' },
        file: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n' },
        since: { type: 'string' },
        'root-namespace': { type: 'string' },
        'trust-domain': { type: 'string', multiple: true },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
        ...ADMIN_FLAGS,
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora check --replay: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  try {
    const output = parseOutput(values.output)
    const since = parseSince(values.since)
    const t = resolveTarget(values)
    let rootNamespace = values['root-namespace'] ?? DEFAULT_ROOT_NAMESPACE
    let loaded: DocumentsValidation
    let against: string
    if (values.file?.length) {
      loaded = await loadPolicies({ files: values.file, trustDomains: values['trust-domain'], rootNamespace })
      against = values.file.join(', ')
    } else {
      const r = await callApi(t, 'GET', '/v1/sources')
      if (r.status !== 200) return apiFailure('check', r)
      rootNamespace = values['root-namespace'] ?? String(r.json.rootNamespace ?? DEFAULT_ROOT_NAMESPACE)
      loaded = validateDocuments(r.json.sources as PolicySource[], { trustDomains: values['trust-domain'] ?? [String(r.json.trustDomain)], rootNamespace })
      against = `the policies in force (version ${String(r.json.version)})`
    }
    if (loaded.errors.length > 0) {
      for (const e of loaded.errors) console.error(formatPolicyIssue(e))
      console.error(`remora check: the policies are invalid (${loaded.errors.length} error(s)); run remora validate`)
      return 2
    }
    const traffic = await fetchTraffic(t, { namespace: values.namespace, since })
    if (isApiReply(traffic)) return apiFailure('check', traffic)
    const out = replay(traffic.edges, loaded.policies, { rootNamespace })
    if (output === 'json') {
      console.log(JSON.stringify({ window: traffic.window, against, edges: out, warnings: loaded.warnings.map(issueJson) }, null, 2))
      return 0
    }
    for (const w of loaded.warnings) console.error(`warning: ${formatPolicyIssue(w)}`)
    for (const r of out) console.log(replayLine(r))
    const deny = out.filter((r) => r.decision.action === 'DENY').length
    // A group recorded both ways (a JWT or a header decided) always differs from one replayed decision.
    const differ = out.filter((r) => (r.decision.action === 'ALLOW' ? r.recorded.deny : r.recorded.allow) > 0).length
    console.log(`replayed ${out.length} edge(s) against ${against}: ${out.length - deny} ALLOW, ${deny} DENY; ${differ} decided otherwise than recorded`)
    return 0
  } catch (err) {
    if (isUsageError(err)) {
      console.error(`remora check --replay: ${err.message}`)
      return 2
    }
    console.error(`remora check --replay: ${(err as Error).message}`)
    return 1
  }
}

