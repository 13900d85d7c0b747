// Enforces the picture in docs/architecture.json on the real source tree (DESIGN.md §7):
// - every folder of proxy/ and control-plane/ with .ts files is a named part there, and every part
//   is a folder (picture and tree cannot drift);
// - every "never" arrow there (the shared leaves import nothing, control-plane takes only the
//   leaves' index from proxy/, proxy never imports control-plane, cli/ is the top layer, product
//   code never imports test/) is checked against the real imports;
// - every part has an index.ts that opens with a `//` comment saying what it owns (CONVENTIONS.md,
//   habit 11).
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

/** One "never" arrow: no file under a `from` imports anything under a `to`, except under an `except`. */
interface NeverRule {
  readonly from: readonly string[]
  readonly to: readonly string[]
  readonly except: readonly string[]
  readonly why: string
}

interface ArchitectureDoc {
  readonly roots: Readonly<Record<string, string>>
  readonly parts: Readonly<Record<string, string>>
  readonly never: readonly NeverRule[]
}

const ARCHITECTURE = JSON.parse(readFileSync(join(REPO, 'docs/architecture.json'), 'utf8')) as ArchitectureDoc

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

const under = (path: string, dir: string): boolean => dir === '*' || path === dir || path.startsWith(`${dir}/`)

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

/** Returns why `from` may not import `target` under `rules`, or null when it may. */
function ruleBroken(rules: readonly NeverRule[], from: string, target: string): string | null {
  for (const r of rules) {
    if (!r.from.some((f) => under(from, f))) continue
    if (!r.to.some((t) => under(target, t))) continue
    if (r.except.some((e) => under(target, e))) continue
    return r.why
  }
  return null
}

function importViolations(files: readonly SourceFile[], rules: readonly NeverRule[] = ARCHITECTURE.never): string[] {
  const out: string[] = []
  for (const file of files) {
    for (const ref of importsOf(file)) {
      const why = ruleBroken(rules, file.path, ref.target)
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

  test('docs/architecture.json names every folder of proxy/ and control-plane/, and nothing else', () => {
    const dirs = readModuleDirs().map((d) => d.dir).sort()
    const parts = Object.keys(ARCHITECTURE.parts).sort()
    expect(parts.filter((p) => !dirs.includes(p)).map((p) => `${p}: named in docs/architecture.json but not a folder with .ts files`)).toEqual([])
    expect(dirs.filter((d) => !parts.includes(d)).map((d) => `${d}: a folder missing from docs/architecture.json parts`)).toEqual([])
    for (const [part, owns] of Object.entries(ARCHITECTURE.parts)) expect(owns.length, `${part} says what it owns`).toBeGreaterThan(15)
  })

  test('every "never" rule names known parts or roots, and says why', () => {
    const known = new Set(['*', 'test', ...Object.keys(ARCHITECTURE.roots), ...Object.keys(ARCHITECTURE.parts)])
    const unknown: string[] = []
    for (const r of ARCHITECTURE.never) {
      for (const p of [...r.from, ...r.to]) if (!known.has(p)) unknown.push(p)
      for (const e of r.except) if (!known.has(e.replace(/\/index$/, ''))) unknown.push(e)
      expect(r.why.length).toBeGreaterThan(10)
    }
    expect(unknown).toEqual([])
    expect(ARCHITECTURE.never.length).toBeGreaterThanOrEqual(6)
  })

  test('every module directory under proxy/ and control-plane/ has an index.ts that says what it owns', () => {
    const dirs = readModuleDirs()
    expect(dirs.map((d) => d.dir)).toEqual(expect.arrayContaining(['proxy/policy', 'proxy/identity', 'control-plane/ca']))
    expect(indexViolations(dirs)).toEqual([])
  })
})

describe('architecture rules catch violations (in-memory fixtures)', () => {
  test('each rule of docs/architecture.json reports the file, line and offending import; allowed imports pass', () => {
    const files: SourceFile[] = [
      { path: 'proxy/policy/evaluate.ts', text: "import { z } from 'zod'\nimport { a } from './compile.js'\nimport { parseSpiffeId } from '../identity/index.js'\n" },
      { path: 'proxy/identity/peer.ts', text: "// import x from '../config/index.js' (comments do not count)\nexport async function f() {\n  return import('../config/load.js')\n}\n" },
      { path: 'proxy/identity/spiffe.ts', text: "import type { Stage } from '../pipeline/index.js'\n" },
      { path: 'proxy/snapshot/contract.ts', text: "import { validate } from '../policy/index.js'\nimport { ClusterSchema } from '../config/schema.js'\n" },
      {
        path: 'control-plane/push/stream.ts',
        text: "import { evaluate } from '../../proxy/policy/index.js'\nimport { compile } from '../../proxy/policy/compile.js'\nexport * from '../../proxy/tls/index.js'\nimport { x } from '../store/index.js'\nimport { checkSnapshot } from '../../proxy/snapshot/index.js'\n",
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
      "proxy/snapshot/contract.ts:2 imports '../config/schema.js': proxy/snapshot is a shared leaf and imports nothing else from the repo but proxy/policy/index.js",
      "control-plane/push/stream.ts:2 imports '../../proxy/policy/compile.js': control-plane may import from proxy/ only the shared leaves: proxy/policy/index.js, proxy/identity/index.js, proxy/snapshot/index.js and proxy/errors/index.js",
      "control-plane/push/stream.ts:3 imports '../../proxy/tls/index.js': control-plane may import from proxy/ only the shared leaves: proxy/policy/index.js, proxy/identity/index.js, proxy/snapshot/index.js and proxy/errors/index.js",
      "proxy/stages/authz.ts:1 imports '../../control-plane/ca/index.js': proxy never imports control-plane",
      "proxy/main.ts:1 imports '../cli/main.js': cli/ is the top layer: proxy and control-plane never import it",
      "control-plane/api/server.ts:1 imports '../../test/helpers/pki.js': product code never imports test/",
    ])
  })

  test('a "never" arrow added to the picture is enforced: the same imports, one more rule', () => {
    const files: SourceFile[] = [{ path: 'proxy/admin/dumps.ts', text: "import type { RuntimeState } from '../runtime/index.js'\nimport pino from 'pino'\n" }]
    expect(importViolations(files)).toEqual([])
    const extra: NeverRule = { from: ['proxy/admin'], to: ['proxy/runtime'], except: [], why: 'admin reads state through AdminSource only' }
    expect(importViolations(files, [...ARCHITECTURE.never, extra])).toEqual(["proxy/admin/dumps.ts:1 imports '../runtime/index.js': admin reads state through AdminSource only"])
  })

  test('telemetry looking up at the stages is reported (the access-log entry lives in telemetry)', () => {
    const files: SourceFile[] = [{ path: 'proxy/telemetry/access-log.ts', text: "import type { AccessLogEntry } from '../stages/access-log.js'\n" }]
    expect(importViolations(files)).toEqual(["proxy/telemetry/access-log.ts:1 imports '../stages/access-log.js': telemetry serves the stages and listeners and never looks up at them"])
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
