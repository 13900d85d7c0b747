import { RemoraError } from '../errors/index.js'
import type { ConfigIssue } from './schema.js'

// Apart from load.ts so that the proxy command can name config errors (flag parsing) before it
// loads the schema, the policy validator and the rest of the sidecar.

/** sidecar.yaml or a flag is invalid: one issue per field (exit code 2). The CLI prints them. */
export class ConfigError extends RemoraError<'REMORA_ERR_CONFIG_INVALID'> {
  constructor(readonly issues: ConfigIssue[]) {
    super('REMORA_ERR_CONFIG_INVALID', 400, issues.map((i) => `${i.path}: ${i.message}`).join('\n'))
  }
}
