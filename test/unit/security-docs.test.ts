// docs/security.md names a test for every defended property; this keeps those names true. Each
// table row of "What remora defends" must name at least one test as `path` › "title", the file
// must exist, and the title must be a test (or describe) title in it. A renamed or deleted test
// fails here, so the threat model cannot silently lose its evidence.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const doc = readFileSync(join(REPO, 'docs/security.md'), 'utf8')

interface Ref {
  readonly file: string
  readonly title: string
}

/** The rows of the tables under "## What remora defends" (up to the next "## "). */
function defendedRows(): string[] {
  const start = doc.indexOf('## What remora defends')
  const end = doc.indexOf('\n## ', start + 1)
  return doc
    .slice(start, end === -1 ? undefined : end)
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| property') && !l.startsWith('|---'))
}

function refsOf(row: string): Ref[] {
  const cells = row.split(' | ')
  const last = cells[cells.length - 1]!
  const out: Ref[] = []
  for (const m of last.matchAll(/`(test\/[^`]+)`(?: › "([^"]*)")?/g)) out.push({ file: m[1]!, title: m[2] ?? '' })
  return out
}

/** Test and describe titles of a file as written (string literal or template literal). */
function titlesIn(file: string): string[] {
  const text = readFileSync(join(REPO, file), 'utf8')
  return [...text.matchAll(/\b(?:test|it|describe)(?:\.each\([^)]*\))?\(\s*(['`"])((?:(?!\1).)*)\1/g)].map((m) => m[2]!)
}

describe('docs/security.md names real tests', () => {
  const rows = defendedRows()

  test('the threat model has defended properties (so the checks below check something)', () => {
    expect(rows.length).toBeGreaterThanOrEqual(20)
  })

  test('every defended property names at least one test', () => {
    const bare = rows.filter((r) => refsOf(r).length === 0)
    expect(bare).toEqual([])
  })

  test('every named test file exists and every named title is one of its tests', () => {
    const missing: string[] = []
    for (const row of rows) {
      for (const ref of refsOf(row)) {
        const path = join(REPO, ref.file)
        if (!existsSync(path)) {
          missing.push(`${ref.file}: no such file or folder`)
          continue
        }
        if (statSync(path).isDirectory()) continue
        const titles = titlesIn(ref.file)
        if (titles.length === 0) missing.push(`${ref.file}: no test in it`)
        else if (ref.title && !titles.some((t) => t.includes(ref.title))) missing.push(`${ref.file}: no test titled like "${ref.title}"`)
      }
    }
    expect(missing).toEqual([])
  })
})
