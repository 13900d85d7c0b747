import { runProxy } from '../../proxy/main.js'

export function run(argv: string[]): Promise<number> {
  return runProxy(argv)
}
