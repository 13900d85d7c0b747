// Enforces the module boundaries of DESIGN.md §7 on the real source tree:
// - proxy/policy and proxy/identity are shared leaves: they import nothing else from the repo;
// - control-plane/** may take from proxy/ only proxy/policy/index.js and proxy/identity/index.js;
// - proxy/** never imports control-plane/**;
// - every directory under proxy/ and control-plane/ with .ts files has an index.ts that opens with
//   a `//` comment saying what the module owns (CONVENTIONS.md, habit 11).
// Two more rules follow from the layout: cli/ is the top layer (proxy/ and control-plane/ never
// import it) and product code never imports test/.
// Imports are read with TypeScript's own pre-processor (static imports, `export … from`, dynamic
// `import('…')`, `require`), so comments and strings never count.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, test } from 'vitest'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SOURCE_ROOTS = ['proxy', 'control-plane', 'cli']
const MODULE_ROOTS = ['proxy', 'control-plane']
const LEAVES = ['proxy/policy', 'proxy/identity']
const LEAF_ENTRIES = LEAVES.map((l) => `${l}/index`)

interface SourceFile {
  /** Repo-relative, posix separators. */
  readonly path: string
  readonly text: string
}

interface ImportRef {
  readonly specifier: string
  readonly line: number
  /** Repo-relative target without extension, for relative specifiers only. */
  readonly target: string
}

const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`)

function importsOf(file: SourceFile): ImportRef[] {
  const info = ts.preProcessFile(file.text, true, true)
  const refs: ImportRef[] = []
  for (const f of info.importedFiles) {
    if (!f.fileName.startsWith('.')) continue // npm packages and node: builtins
    const target = posix.normalize(posix.join(posix.dirname(file.path), f.fileName)).replace(/\.(js|ts|mjs|cjs|mts|cts)$/, '')
    const line = file.text.slice(0, f.pos).split('\n').length
    refs.push({ specifier: f.fileName, line, target })
  }
  return refs
}

/** Returns why `from` may not import `target`, or null when it may. */
function ruleBroken(from: string, target: string): string | null {
  for (const leaf of LEAVES) {
    if (under(from, leaf) && !under(target, leaf)) return `${leaf} is a shared leaf and imports nothing else from the repo`
  }
  if (under(from, 'control-plane') && under(target, 'proxy') && !LEAF_ENTRIES.includes(target)) {
    return 'control-plane may import from proxy/ only proxy/policy/index.js and proxy/identity/index.js'
  }
  if (under(from, 'proxy') && under(target, 'control-plane')) return 'proxy never imports control-plane'
  if (MODULE_ROOTS.some((r) => under(from, r)) && under(target, 'cli')) return 'cli/ is the top layer: proxy and control-plane never import it'
  if (under(target, 'test')) return 'product code never imports test/'
  return null
}

function importViolations(files: readonly SourceFile[]): string[] {
  const out: string[] = []
  for (const file of files) {
    for (const ref of importsOf(file)) {
      const why = ruleBroken(file.path, ref.target)
      if (why) out.push(`${file.path}:${ref.line} imports '${ref.specifier}': ${why}`)
    }
  }
  return out
}

interface ModuleDir {
  readonly dir: string
  /** The text of its index.ts, or null when there is none. */
  readonly index: string | null
}

// One to three lines that say what the module owns: a real sentence, not a bare `//`.
const HEADER = /^\/\/ *\S.{15,}/

function indexViolations(dirs: readonly ModuleDir[]): string[] {
  const out: string[] = []
  for (const { dir, index } of dirs) {
    if (index === null) out.push(`${dir}/ has .ts files but no index.ts (a module's index.ts says what it owns)`)
    else if (!HEADER.test(index.replace(/^\uFEFF/, ''))) {
      out.push(`${dir}/index.ts must open with a // comment saying what the module owns and what it must not import`)
    }
  }
  return out
}

function walk(dir: string, visit: (abs: string, names: string[]) => void): void {
  const entries = readdirSync(dir, { withFileTypes: true })
  visit(
    dir,
    entries.filter((e) => e.isFile()).map((e) => e.name),
  )
  for (const e of entries) if (e.isDirectory() && e.name !== 'node_modules') walk(join(dir, e.name), visit)
}

const toRepoPath = (abs: string): string => relative(REPO, abs).split(sep).join('/')
const isSource = (name: string): boolean => name.endsWith('.ts') && !name.endsWith('.d.ts')

function readSources(): SourceFile[] {
  const files: SourceFile[] = []
  for (const root of SOURCE_ROOTS) {
    walk(join(REPO, root), (abs, names) => {
      for (const n of names.filter(isSource)) files.push({ path: toRepoPath(join(abs, n)), text: readFileSync(join(abs, n), 'utf8') })
    })
  }
  return files
}

function readModuleDirs(): ModuleDir[] {
  const dirs: ModuleDir[] = []
  for (const root of MODULE_ROOTS) {
    walk(join(REPO, root), (abs, names) => {
      if (abs === join(REPO, root) || !names.some(isSource)) return // the roots hold main.ts, not a module
      dirs.push({ dir: toRepoPath(abs), index: names.includes('index.ts') ? readFileSync(join(abs, 'index.ts'), 'utf8') : null })
    })
  }
  return dirs
}

describe('architecture (DESIGN.md §7)', () => {
  const sources = readSources()

  test('the source tree is where the test looks (so the rules below check something)', () => {
    const paths = sources.map((f) => f.path)
    expect(paths).toContain('proxy/policy/index.ts')
    expect(paths).toContain('proxy/identity/index.ts')
    expect(paths.some((p) => p.startsWith('control-plane/'))).toBe(true)
    expect(sources.flatMap(importsOf).length).toBeGreaterThan(50)
  })

  test('no file imports across a module boundary', () => {
    expect(importViolations(sources)).toEqual([])
  })

  test('every module directory under proxy/ and control-plane/ has an index.ts that says what it owns', () => {
    const dirs = readModuleDirs()
    expect(dirs.map((d) => d.dir)).toEqual(expect.arrayContaining(['proxy/policy', 'proxy/identity', 'control-plane/ca']))
    expect(indexViolations(dirs)).toEqual([])
  })
})

describe('architecture rules catch violations (in-memory fixtures)', () => {
  test('each rule reports the file, line and offending import; allowed imports pass', () => {
    const files: SourceFile[] = [
      { path: 'proxy/policy/evaluate.ts', text: "import { z } from 'zod'\nimport { a } from './compile.js'\nimport { parseSpiffeId } from '../identity/index.js'\n" },
      { path: 'proxy/identity/peer.ts', text: "// import x from '../config/index.js' (comments do not count)\nexport async function f() {\n  return import('../config/load.js')\n}\n" },
      { path: 'proxy/identity/spiffe.ts', text: "import type { Stage } from '../pipeline/index.js'\n" },
      {
        path: 'control-plane/push/stream.ts',
        text: "import { evaluate } from '../../proxy/policy/index.js'\nimport { compile } from '../../proxy/policy/compile.js'\nexport * from '../../proxy/tls/index.js'\nimport { x } from '../store/index.js'\n",
      },
      { path: 'proxy/stages/authz.ts', text: "import { issue } from '../../control-plane/ca/index.js'\nimport { evaluate } from '../policy/index.js'\n" },
      { path: 'proxy/main.ts', text: "import { run } from '../cli/main.js'\n" },
      { path: 'control-plane/api/server.ts', text: "import { createTestPki } from '../../test/helpers/pki.js'\n" },
      { path: 'cli/commands/ca.ts', text: "import { createRootCa } from '../../control-plane/ca/ca.js'\nimport { load } from '../../proxy/config/load.js'\n" },
    ]
    expect(importViolations(files)).toEqual([
      "proxy/policy/evaluate.ts:3 imports '../identity/index.js': proxy/policy is a shared leaf and imports nothing else from the repo",
      "proxy/identity/peer.ts:3 imports '../config/load.js': proxy/identity is a shared leaf and imports nothing else from the repo",
      "proxy/identity/spiffe.ts:1 imports '../pipeline/index.js': proxy/identity is a shared leaf and imports nothing else from the repo",
      "control-plane/push/stream.ts:2 imports '../../proxy/policy/compile.js': control-plane may import from proxy/ only proxy/policy/index.js and proxy/identity/index.js",
      "control-plane/push/stream.ts:3 imports '../../proxy/tls/index.js': control-plane may import from proxy/ only proxy/policy/index.js and proxy/identity/index.js",
      "proxy/stages/authz.ts:1 imports '../../control-plane/ca/index.js': proxy never imports control-plane",
      "proxy/main.ts:1 imports '../cli/main.js': cli/ is the top layer: proxy and control-plane never import it",
      "control-plane/api/server.ts:1 imports '../../test/helpers/pki.js': product code never imports test/",
    ])
  })

  test('a module directory without index.ts, or whose index.ts does not open with a comment, is reported', () => {
    expect(
      indexViolations([
        { dir: 'proxy/ok', index: '// The ok module: owns everything ok; imports nothing.\nexport {}\n' },
        { dir: 'proxy/missing', index: null },
        { dir: 'proxy/bare', index: "export * from './x.js'\n" },
        { dir: 'proxy/empty-comment', index: '//\nexport {}\n' },
      ]),
    ).toEqual([
      'proxy/missing/ has .ts files but no index.ts (a module\'s index.ts says what it owns)',
      'proxy/bare/index.ts must open with a // comment saying what the module owns and what it must not import',
      'proxy/empty-comment/index.ts must open with a // comment saying what the module owns and what it must not import',
    ])
  })
})
