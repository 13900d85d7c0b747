// docs/errors.md and the error catalogs stay in sync both ways (CONVENTIONS.md, habit 2): every
// code a catalog defines has a row there with the same status / flag / severity, every code the
// page mentions exists in a catalog, and every response flag has its row. A last check reads the
// product source, so that a new code defined outside the catalogs below cannot slip past the docs.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { CA_ERRORS } from '../../control-plane/ca/index.js'
import { STORE_ERRORS } from '../../control-plane/store/index.js'
import { INJECT_ERRORS } from '../../control-plane/inject/index.js'
import { InterceptionError, IptablesError } from '../../proxy/interception/index.js'
import { NATIVE_ERRORS } from '../../proxy/native/index.js'
import { KubeApiError } from '../../control-plane/kubernetes/index.js'
import { CP_ERRORS } from '../../control-plane/api/index.js'
import { XDS_ERRORS } from '../../proxy/xds/index.js'
import { ConfigError } from '../../proxy/config/load.js'
import { PolicyFilesError } from '../../proxy/config/policy-files.js'
import { FLAGS } from '../../proxy/pipeline/flags.js'
import { PROXY_ERRORS } from '../../proxy/pipeline/errors.js'
import { POLICY_ISSUES } from '../../proxy/policy/index.js'
import { StartupError } from '../../proxy/sidecar.js'
import { CredentialError } from '../../proxy/tls/credentials.js'
import { UsageError } from '../../cli/errors.js'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DOC = 'docs/errors.md'

/** What the docs row of a code must show, where the catalog defines it. */
interface CodeFacts {
  readonly status?: number
  readonly flag?: string
  readonly severity?: string
}

interface Catalog {
  readonly name: string
  readonly codes: ReadonlyMap<string, CodeFacts>
}

/** A catalog object keyed by code; picks `status`, `flag` and `severity` from its entries. */
function catalog(name: string, entries: Readonly<Record<string, object>>): Catalog {
  const codes = new Map<string, CodeFacts>()
  for (const [code, e] of Object.entries(entries)) {
    const { status, flag, severity } = e as CodeFacts
    codes.set(code, { ...(status !== undefined && { status }), ...(flag !== undefined && { flag }), ...(severity !== undefined && { severity }) })
  }
  return { name, codes }
}

/** Error classes that each carry one code (no status: they stop start-up with exit code 2). */
function errorClasses(name: string, errors: readonly { readonly code: string }[]): Catalog {
  return { name, codes: new Map(errors.map((e) => [e.code, {}])) }
}

// Adding a catalog is one line here.
const CATALOGS: readonly Catalog[] = [
  catalog('PROXY_ERRORS (proxy/pipeline/errors.ts)', PROXY_ERRORS),
  catalog('CA_ERRORS (control-plane/ca/errors.ts)', CA_ERRORS),
  catalog('STORE_ERRORS (control-plane/store/errors.ts)', STORE_ERRORS),
  catalog('INJECT_ERRORS (control-plane/inject/errors.ts)', INJECT_ERRORS),
  errorClasses('interception (proxy/interception)', [new InterceptionError(''), new IptablesError('')]),
  catalog('NATIVE_ERRORS (proxy/native/errors.ts)', NATIVE_ERRORS),
  errorClasses('Kubernetes source (control-plane/kubernetes)', [new KubeApiError(0, '')]),
  catalog('CP_ERRORS (control-plane/api/errors.ts)', CP_ERRORS),
  catalog('XDS_ERRORS (proxy/xds/errors.ts)', XDS_ERRORS),
  catalog('POLICY_ISSUES (proxy/policy/errors.ts)', POLICY_ISSUES),
  errorClasses('command-line usage (cli/errors.ts)', [new UsageError('')]),
  errorClasses('config and start-up errors (proxy/config, proxy/tls, proxy/sidecar.ts)', [
    new ConfigError([]),
    new StartupError('', ''),
    new CredentialError('certFile', ''),
    new PolicyFilesError('', ''),
  ]),
]

const CODE = /\bREMORA_(?:ERR|WARN)_[A-Z0-9_]+\b/g

/** Table rows whose first cell is a `code`, keyed by that code. Cells are trimmed. */
function tableRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>()
  for (const line of markdown.split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line)
    if (m) rows.set(m[1]!, m[2]!.split('|').map((c) => c.trim()))
  }
  return rows
}

/** Everything that drifted between the catalogs and the page, one readable line each. */
function docDrift(catalogs: readonly Catalog[], flags: Readonly<Record<string, string>>, markdown: string): string[] {
  const out: string[] = []
  const rows = tableRows(markdown)
  const known = new Set<string>()
  for (const c of catalogs) {
    for (const [code, facts] of c.codes) {
      known.add(code)
      const cells = rows.get(code)
      if (!cells) {
        out.push(`${code} (${c.name}) has no row in ${DOC}`)
        continue
      }
      if (facts.status !== undefined && !cells.includes(String(facts.status))) out.push(`${code}: ${DOC} does not show status ${facts.status}`)
      if (facts.flag !== undefined && !cells.includes(`\`${facts.flag}\``)) out.push(`${code}: ${DOC} does not show flag \`${facts.flag}\``)
      if (facts.severity !== undefined && !cells.includes(facts.severity)) out.push(`${code}: ${DOC} does not show severity ${facts.severity}`)
    }
  }
  for (const code of new Set(markdown.match(CODE) ?? [])) {
    if (!known.has(code)) out.push(`${DOC} mentions ${code}, which no catalog defines`)
  }
  const flagCodes = new Map(Object.entries(flags).map(([name, flag]) => [flag, name]))
  for (const [flag, name] of flagCodes) {
    const cells = rows.get(flag)
    if (!cells) out.push(`response flag ${flag} (${name}) has no row in ${DOC}`)
    else if (!cells.includes(name)) out.push(`response flag ${flag}: ${DOC} does not name it ${name}`)
  }
  for (const key of rows.keys()) {
    if (/^[A-Z]{2,4}$/.test(key) && !flagCodes.has(key)) out.push(`${DOC} lists response flag ${key}, which FLAGS does not define`)
  }
  return out
}

function productSources(dir: string): string[] {
  return readdirSync(join(REPO, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name))
}

describe(`${DOC} and the error catalogs`, () => {
  const markdown = readFileSync(join(REPO, DOC), 'utf8')

  test('the catalogs are loaded (so the checks below check something)', () => {
    expect(CATALOGS.every((c) => c.codes.size > 0)).toBe(true)
    expect(CATALOGS.reduce((n, c) => n + c.codes.size, 0)).toBeGreaterThan(60)
  })

  test('every code and flag is documented with its status, flag and severity, and the page names nothing that does not exist', () => {
    expect(docDrift(CATALOGS, FLAGS, markdown)).toEqual([])
  })

  test('every REMORA_ERR_/REMORA_WARN_ code written in the product source belongs to a catalog listed in this test', () => {
    const known = new Set(CATALOGS.flatMap((c) => [...c.codes.keys()]))
    const stray: string[] = []
    for (const file of ['proxy', 'control-plane', 'cli'].flatMap(productSources)) {
      // Only string literals: a comment may well mention a code.
      for (const m of readFileSync(file, 'utf8').matchAll(/['"`](REMORA_(?:ERR|WARN)_[A-Z0-9_]+)['"`]/g)) {
        if (!known.has(m[1]!)) stray.push(`${file.slice(REPO.length + 1)}: ${m[1]} (add its catalog to CATALOGS in this test and a row to ${DOC})`)
      }
    }
    expect(stray).toEqual([])
  })
})

describe('the drift check catches drift (in-memory page)', () => {
  const cats = [catalog('TEST', { REMORA_ERR_A: { status: 503, flag: 'UF' }, REMORA_ERR_B: { status: 400 }, REMORA_WARN_C: { severity: 'warning' } })]
  const flags = { UpstreamConnectionFailure: 'UF', NoRoute: 'NR' }

  test('an in-sync page passes', () => {
    const page = [
      '| code | status | flag | when |',
      '|---|---|---|---|',
      '| `REMORA_ERR_A` | 503 | `UF` | a |',
      '| `REMORA_ERR_B` | 400 | | b |',
      '| `REMORA_WARN_C` | warning | c |',
      '| `UF` | UpstreamConnectionFailure | x | y |',
      '| `NR` | NoRoute | x | y |',
    ].join('\n')
    expect(docDrift(cats, flags, page)).toEqual([])
  })

  test('a missing code, a wrong status, flag or severity, a stale code and flag drift are each reported', () => {
    const page = [
      '| `REMORA_ERR_A` | 502 | `UC` | a |',
      '| `REMORA_WARN_C` | error | c |',
      'See also REMORA_ERR_GONE.',
      '| `UF` | UpstreamFailure | x | y |',
      '| `ZZ` | Nothing | x | y |',
    ].join('\n')
    expect(docDrift(cats, flags, page)).toEqual([
      `REMORA_ERR_A: ${DOC} does not show status 503`,
      `REMORA_ERR_A: ${DOC} does not show flag \`UF\``,
      `REMORA_ERR_B (TEST) has no row in ${DOC}`,
      `REMORA_WARN_C: ${DOC} does not show severity warning`,
      `${DOC} mentions REMORA_ERR_GONE, which no catalog defines`,
      `response flag UF: ${DOC} does not name it UpstreamConnectionFailure`,
      `response flag NR (NoRoute) has no row in ${DOC}`,
      `${DOC} lists response flag ZZ, which FLAGS does not define`,
    ])
  })
})
