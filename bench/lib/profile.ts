// Summarises V8 .cpuprofile files (node --cpu-prof): self time per function and per source file,
// so the hot spots of the request path can be read without a GUI.
//   npx tsx bench/lib/profile.ts file.cpuprofile [more…] [--top 30]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

function shortUrl(url: string): string {
  if (!url) return '(native)'
  const u = url.replace(/^file:\/\//, '')
  const nm = u.lastIndexOf('node_modules/')
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length)
  const d = u.indexOf('/dist/')
  if (d >= 0) return u.slice(d + 1)
  return u
}

/** Self and total time per function across profiles, as a text table. */
export function summarizeProfiles(files: readonly string[], top = 30): string {
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  const byFile = new Map<string, number>()
  let all = 0
  for (const f of files) {
    const p = JSON.parse(readFileSync(f, 'utf8')) as CpuProfile
    const byId = new Map(p.nodes.map((n) => [n.id, n]))
    const parent = new Map<number, number>()
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    const key = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'}  ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`
    for (let i = 0; i < p.samples.length; i++) {
      const dt = p.timeDeltas[i] ?? 0
      const n = byId.get(p.samples[i]!)
      if (!n) continue
      const name = n.callFrame.functionName
      if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
        if (name !== '(idle)') {
          self.set(name, (self.get(name) ?? 0) + dt)
          all += dt
        }
        continue
      }
      all += dt
      const k = key(n)
      self.set(k, (self.get(k) ?? 0) + dt)
      const file = shortUrl(n.callFrame.url)
      byFile.set(file, (byFile.get(file) ?? 0) + dt)
      // Total time: once per distinct function on the stack.
      const seen = new Set<string>()
      for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
        const k2 = key(byId.get(id)!)
        if (!seen.has(k2)) {
          seen.add(k2)
          total.set(k2, (total.get(k2) ?? 0) + dt)
        }
      }
    }
  }
  const pct = (x: number): string => `${((100 * x) / (all || 1)).toFixed(1).padStart(5)} %`
  const lines: string[] = [`${files.length} profile(s), ${(all / 1e6).toFixed(2)} s of non-idle samples`, '', 'self time:']
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`)
  lines.push('', 'self time by file:')
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, Math.min(top, 20))) lines.push(`  ${pct(v)}  ${k}`)
  lines.push('', 'total time (remora code):')
  for (const [k, v] of [...total].filter(([k]) => /(proxy|cli)\//.test(k) && !k.includes('node_modules')).sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`)
  return lines.join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2)
  const i = args.indexOf('--top')
  const top = i >= 0 ? Number(args[i + 1]) : 30
  const files = args.filter((a, j) => a !== '--top' && (i < 0 || j !== i + 1))
  console.log(summarizeProfiles(files, top))
}
