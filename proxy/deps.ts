// What every sidecar module is given instead of reaching for globals (CONVENTIONS.md habit 8): the
// clock and the logger. Only main.ts (and tests) build the real ones; metrics and the tracer are
// built by the sidecar from its config and handed to the stages when a snapshot is compiled.

export interface Clock {
  now(): number
}

/** pino-compatible subset. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** The shape of an `internal_error` log line: the error's name, message and stack, never request data. */
export function logInternalError(logger: Logger, err: unknown): void {
  logger.error({ event: 'internal_error', err: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err) }, 'internal error')
}
