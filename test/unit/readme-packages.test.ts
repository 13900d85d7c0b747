// The README's one apt-get line for the system tests is exactly .ci/packages.txt (what .ci/run installs).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { ROOT } from '../helpers/process.js'

test("README's apt-get line installs exactly .ci/packages.txt", () => {
  const pkgs = readFileSync(join(ROOT, '.ci', 'packages.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
  const line = /^apt-get install -y ((?:[a-z0-9.+-]+ ?)+)$/m.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))
  expect(line, 'an "apt-get install -y …" line in README.md').not.toBeNull()
  expect(line![1]!.trim().split(' ').sort()).toEqual([...pkgs].sort())
})
