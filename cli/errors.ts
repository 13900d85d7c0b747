import { RemoraError, defineErrors } from '../proxy/errors/index.js'

// The CLI's own error: bad flags or arguments (exit code 2). Every other failure carries the code of
// the area it came from (a policy file, the control plane's API, injection…).
export const CLI_ERRORS = {
  REMORA_ERR_CLI_USAGE: { status: 400, message: 'invalid command line' },
} as const

const cli = defineErrors(CLI_ERRORS)

/** Bad usage: the message is the one line the user sees (it names the flag). */
export class UsageError extends RemoraError<'REMORA_ERR_CLI_USAGE'> {
  constructor(message: string) {
    super('REMORA_ERR_CLI_USAGE', 400, message)
  }
}

/** Bad usage of any command (matched on the code). */
export const isUsageError = (err: unknown): err is UsageError => cli.has(err)
