export { CONTROL_PLANE_USAGE } from '../../control-plane/main.js'
import { runControlPlane } from '../../control-plane/main.js'

export function run(argv: string[]): Promise<number> {
  return runControlPlane(argv)
}
