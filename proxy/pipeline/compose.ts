import type { Handler, Stage } from './types.js'

/**
 * compose([a, b, c], terminal) = a(b(c(terminal))): the first stage is the outermost.
 * Each link is checked while building (like undici's compose) so a bad stage fails at config time.
 */
export function compose(stages: readonly Stage[], terminal: Handler): Handler {
  if (typeof terminal !== 'function') throw new TypeError('compose: terminal handler must be a function')
  let handler = terminal
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i]
    if (typeof stage !== 'function') throw new TypeError(`compose: stage ${i} is not a function`)
    const next = stage(handler)
    if (typeof next !== 'function') throw new TypeError(`compose: stage ${i} (${stage.name || 'anonymous'}) did not return a handler`)
    handler = next
  }
  return handler
}
