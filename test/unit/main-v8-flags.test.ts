import { describe, expect, test } from 'vitest'
import { missingV8Flags, SIDECAR_V8_FLAGS } from '../../proxy/main.js'

// Which V8 sizing flags `remora proxy` still has to start with (proxy/main.ts): the default list or
// REMORA_V8_FLAGS, less what the operator already gave on the command line or in NODE_OPTIONS.
describe('missingV8Flags', () => {
  test('a plain start is missing the whole default list', () => {
    expect(missingV8Flags({}, [])).toEqual([...SIDECAR_V8_FLAGS])
    expect(SIDECAR_V8_FLAGS).toEqual(['--max-semi-space-size=4', '--max-old-space-size=256'])
  })

  test('a flag given on the command line or in NODE_OPTIONS wins, whatever its value and spelling', () => {
    expect(missingV8Flags({}, ['--max-semi-space-size=16'])).toEqual(['--max-old-space-size=256'])
    expect(missingV8Flags({ NODE_OPTIONS: '--max_old_space_size=1024 --enable-source-maps' }, [])).toEqual(['--max-semi-space-size=4'])
    expect(missingV8Flags({ NODE_OPTIONS: '--max-old-space-size=512' }, ['--max-semi-space-size=2', '--import', 'tsx'])).toEqual([])
  })

  test('REMORA_V8_FLAGS replaces the list; off or empty turns the sizing off', () => {
    expect(missingV8Flags({ REMORA_V8_FLAGS: '--max-semi-space-size=8  --single-threaded-gc' }, [])).toEqual(['--max-semi-space-size=8', '--single-threaded-gc'])
    expect(missingV8Flags({ REMORA_V8_FLAGS: 'off' }, [])).toEqual([])
    expect(missingV8Flags({ REMORA_V8_FLAGS: '  ' }, [])).toEqual([])
  })

  test('anything but --flag[=value] in REMORA_V8_FLAGS is a config error naming the variable', () => {
    expect(() => missingV8Flags({ REMORA_V8_FLAGS: '--max-semi-space-size=4 ; rm -rf /' }, [])).toThrow(
      expect.objectContaining({ code: 'REMORA_ERR_CONFIG_INVALID', issues: [{ path: 'REMORA_V8_FLAGS', message: 'expected --flag or --flag=value separated by spaces, or off; got ";"' }] }),
    )
    expect(() => missingV8Flags({ REMORA_V8_FLAGS: 'max-semi-space-size=4' }, [])).toThrow(/REMORA_V8_FLAGS/)
  })
})
