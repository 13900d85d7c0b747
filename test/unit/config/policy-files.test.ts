// readPolicySources(): files, directories (recursive, sorted), ConfigMap-style dot entries skipped.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { PolicyFilesError, readPolicySources } from '../../../proxy/config/policy-files.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'remora-policy-files-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

test('a directory: .yaml/.yml/.json files, recursively, sorted; other files and dot entries skipped', async () => {
  await mkdir(join(dir, 'sub'))
  await mkdir(join(dir, '..2024_01_01'))
  await writeFile(join(dir, 'b.yaml'), 'b')
  await writeFile(join(dir, 'a.json'), 'a')
  await writeFile(join(dir, 'sub', 'c.yml'), 'c')
  await writeFile(join(dir, 'README.md'), 'x')
  await writeFile(join(dir, '.hidden.yaml'), 'x')
  await writeFile(join(dir, '..2024_01_01', 'b.yaml'), 'dup')
  await symlink(join(dir, '..2024_01_01'), join(dir, '..data'))
  const got = await readPolicySources([dir])
  expect(got).toEqual([
    { source: join(dir, 'a.json'), text: 'a' },
    { source: join(dir, 'b.yaml'), text: 'b' },
    { source: join(dir, 'sub', 'c.yml'), text: 'c' },
  ])
})

test('a file named directly is read whatever its extension, once', async () => {
  const f = join(dir, 'policies.txt')
  await writeFile(f, 'p')
  expect(await readPolicySources([f, f])).toEqual([{ source: f, text: 'p' }])
})

test('a missing path fails closed with a PolicyFilesError', async () => {
  await expect(readPolicySources([join(dir, 'nope.yaml')])).rejects.toBeInstanceOf(PolicyFilesError)
  await expect(readPolicySources([join(dir, 'nope.yaml')])).rejects.toMatchObject({ code: 'REMORA_ERR_POLICY_FILES' })
})

test('a symlinked policy file inside a directory is read; a dangling link is skipped', async () => {
  await writeFile(join(dir, 'real.txt'), 'r')
  await symlink(join(dir, 'real.txt'), join(dir, 'link.yaml'))
  await symlink(join(dir, 'missing'), join(dir, 'dangling.yaml'))
  expect(await readPolicySources([dir])).toEqual([{ source: join(dir, 'link.yaml'), text: 'r' }])
})
