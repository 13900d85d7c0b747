// `remora release SPIFFE_ID`: undo `remora quarantine` (see quarantine.ts).
import { run as quarantine } from './quarantine.js'

export function run(argv: string[]): Promise<number> {
  return quarantine(argv, 'release')
}
