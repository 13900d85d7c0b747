// compose(): the order stages run in, the checks made while building (a bad link fails at config
// time, not on the first request), and what a throwing stage does to the chain.
import { describe, expect, test } from 'vitest'
import { compose, type Handler, type RequestContext, type Stage } from '../../../proxy/pipeline/index.js'

const ctx = {} as RequestContext

/** A stage that records when it is entered and left. */
function recorder(name: string, log: string[]): Stage {
  return (next) =>
    async function recorded(c) {
      log.push(`>${name}`)
      await next(c)
      log.push(`<${name}`)
    }
}

describe('compose', () => {
  test('the first stage is the outermost: a(b(c(terminal)))', async () => {
    const log: string[] = []
    const h = compose([recorder('a', log), recorder('b', log), recorder('c', log)], async () => void log.push('terminal'))
    await h(ctx)
    expect(log).toEqual(['>a', '>b', '>c', 'terminal', '<c', '<b', '<a'])
  })

  test('no stages: the terminal handler itself', async () => {
    const terminal: Handler = async () => {}
    expect(compose([], terminal)).toBe(terminal)
  })

  test('stages are built once, at compose time, innermost first', () => {
    const built: string[] = []
    const stage = (name: string): Stage => (next) => {
      built.push(name)
      return next
    }
    compose([stage('a'), stage('b')], async () => {})
    expect(built).toEqual(['b', 'a'])
  })

  test('a terminal that is not a function is refused while building', () => {
    expect(() => compose([], null as unknown as Handler)).toThrow(/terminal handler must be a function/)
  })

  test('a stage that is not a function is refused while building, with its index', () => {
    expect(() => compose([recorder('a', []), 42 as unknown as Stage], async () => {})).toThrow(/stage 1 is not a function/)
  })

  test('a stage that returns no handler is refused while building, naming the stage', () => {
    const broken: Stage = function brokenStage() {
      return undefined as unknown as Handler
    }
    expect(() => compose([broken], async () => {})).toThrow(/stage 0 \(brokenStage\) did not return a handler/)
  })

  test('a stage that throws stops the chain there: inner stages and the terminal never run, outer ones see the error', async () => {
    const log: string[] = []
    const thrower: Stage = () => async () => {
      log.push('thrower')
      throw Object.assign(new Error('boom'), { code: 'REMORA_ERR_TEST' })
    }
    const catcher: Stage = (next) => async (c) => {
      try {
        await next(c)
      } catch (err) {
        log.push(`caught ${(err as { code: string }).code}`)
      }
    }
    const h = compose([catcher, recorder('outer', log), thrower, recorder('inner', log)], async () => void log.push('terminal'))
    await h(ctx)
    expect(log).toEqual(['>outer', 'thrower', 'caught REMORA_ERR_TEST'])
  })

  test('a rejection with no stage to catch it reaches the caller', async () => {
    const h = compose([recorder('a', [])], async () => {
      throw new Error('terminal failed')
    })
    await expect(h(ctx)).rejects.toThrow('terminal failed')
  })
})
