// What every control-plane module is given instead of reaching for globals (CONVENTIONS.md habit 8):
// the clock and the logger. Only main.ts builds the real ones.
import type { Clock } from './ca/index.js'

export type { Clock }

export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface ControlPlaneDeps {
  readonly clock: Clock
  readonly logger: Logger
}
