// Scrapes a sidecar's Prometheus endpoint over HTTP and parses the text format strictly: metric and
// label names, escapes, values, HELP/TYPE before samples, one TYPE per family, samples grouped under
// their family, histogram buckets cumulative with +Inf == _count. The text also goes through
// parse-prometheus-text-format, an independent parser that throws on a malformed line (it cannot
// group labelled histograms, hence our own grouping). The system test has real Prometheus scrape it.
import http from 'node:http'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'

export interface PromMetric {
  labels: Record<string, string>
  /** counter/gauge/untyped */
  value?: string
  /** histogram: upper bound → cumulative count */
  buckets?: Record<string, string>
  count?: string
  sum?: string
}
export interface PromFamily {
  name: string
  help: string
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
  metrics: PromMetric[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
// Prometheus reads values with Go's strconv.ParseFloat: Inf and NaN in any case (prom-client writes "Nan").
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?inf(?:inity)?|nan)$/i

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {}
  let i = 0
  while (i < s.length) {
    const eq = s.indexOf('=', i)
    if (eq < 0) throw new Error(`bad labels in: ${line}`)
    const name = s.slice(i, eq).trim()
    if (!LABEL.test(name)) throw new Error(`bad label name "${name}" in: ${line}`)
    if (name in out) throw new Error(`duplicate label "${name}" in: ${line}`)
    if (s[eq + 1] !== '"') throw new Error(`label value not quoted in: ${line}`)
    let j = eq + 2
    let v = ''
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === '\\') {
        const c = s[++j]
        if (c === 'n') v += '\n'
        else if (c === '\\' || c === '"') v += c
        else throw new Error(`bad escape in: ${line}`)
      } else v += s[j]
    }
    if (s[j] !== '"') throw new Error(`unterminated label value in: ${line}`)
    out[name] = v
    i = j + 1
    if (s[i] === ',') i++
    else if (i < s.length) throw new Error(`expected "," between labels in: ${line}`)
  }
  return out
}

/** A bucket's upper bound as a number (`+Inf` → Infinity). Object keys do not keep bucket order. */
export const leBound = (le: string): number => (le === '+Inf' ? Infinity : Number(le))

export function parsePrometheusText(text: string): PromFamily[] {
  parsePrometheusTextFormat(text) // throws on a malformed line
  const families = new Map<string, PromFamily & { raw: { name: string; labels: Record<string, string>; value: string }[] }>()
  const seenType = new Set<string>()
  let current: string | null = null
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string]
      if (!NAME.test(name)) throw new Error(`bad metric name: ${line}`)
      const f = families.get(name) ?? { name, help: '', type: 'UNTYPED' as const, metrics: [], raw: [] }
      if (f.raw.length) throw new Error(`${kind} after samples: ${line}`)
      if (kind === 'TYPE') {
        if (seenType.has(name)) throw new Error(`second TYPE for ${name}`)
        seenType.add(name)
        const t = rest.toUpperCase()
        if (!['COUNTER', 'GAUGE', 'HISTOGRAM', 'SUMMARY', 'UNTYPED'].includes(t)) throw new Error(`bad type: ${line}`)
        f.type = t as PromFamily['type']
      } else f.help = rest
      families.set(name, f)
      current = name
      continue
    }
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line)
    if (!m) throw new Error(`bad sample line: ${line}`)
    const [, name, labelText, value] = m as unknown as [string, string, string | undefined, string]
    if (!VALUE.test(value)) throw new Error(`bad value: ${line}`)
    const fam: string = current && (name === current || (name.startsWith(current) && /^_(bucket|sum|count)$/.test(name.slice(current.length)))) ? current : name
    if (fam !== current) {
      if (families.has(name)) throw new Error(`samples of ${name} are not contiguous`)
      families.set(name, { name, help: '', type: 'UNTYPED', metrics: [], raw: [] })
      current = name
    }
    families.get(fam)!.raw.push({ name, labels: labelText ? parseLabels(labelText, line) : {}, value })
  }
  const out: PromFamily[] = []
  for (const f of families.values()) {
    if (f.type !== 'HISTOGRAM') {
      f.metrics = f.raw.map((r) => ({ labels: r.labels, value: r.value }))
    } else {
      const byKey = new Map<string, PromMetric>()
      for (const r of f.raw) {
        const { le, ...labels } = r.labels
        const key = JSON.stringify(Object.entries(labels).sort())
        const pm = byKey.get(key) ?? { labels, buckets: {} }
        byKey.set(key, pm)
        if (r.name === `${f.name}_bucket`) {
          if (le === undefined) throw new Error(`bucket without le in ${f.name}`)
          pm.buckets![le] = r.value
        } else if (r.name === `${f.name}_sum`) pm.sum = r.value
        else if (r.name === `${f.name}_count`) pm.count = r.value
        else throw new Error(`unexpected sample ${r.name} in histogram ${f.name}`)
      }
      for (const pm of byKey.values()) {
        const vals = Object.entries(pm.buckets!)
          .map(([le, v]) => [leBound(le), Number(v)] as const)
          .sort((a, b) => a[0] - b[0])
          .map(([, v]) => v)
        if (vals.some((v, i) => i > 0 && v < vals[i - 1]!)) throw new Error(`${f.name}: buckets not cumulative`)
        if (pm.buckets!['+Inf'] !== pm.count) throw new Error(`${f.name}: +Inf bucket ${pm.buckets!['+Inf']} != count ${pm.count}`)
      }
      f.metrics = [...byKey.values()]
    }
    out.push({ name: f.name, help: f.help, type: f.type, metrics: f.metrics })
  }
  return out
}

export async function scrape(port: number, path = '/metrics'): Promise<{ contentType: string; text: string; families: PromFamily[] }> {
  const { contentType, text } = await new Promise<{ contentType: string; text: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => (res.statusCode === 200 ? resolve({ contentType: String(res.headers['content-type']), text }) : reject(new Error(`GET ${path}: HTTP ${res.statusCode}`))))
      })
      .on('error', reject)
  })
  return { contentType, text, families: parsePrometheusText(text) }
}

const matches = (m: PromMetric, labels: Record<string, string>): boolean => Object.entries(labels).every(([k, v]) => m.labels[k] === v)

/** Sum of the samples of `name` whose labels include `labels` (counters/gauges: value; histograms: count). */
export function metricValue(families: PromFamily[], name: string, labels: Record<string, string> = {}): number {
  const f = families.find((x) => x.name === name)
  if (!f) return 0
  let sum = 0
  for (const m of f.metrics) if (matches(m, labels)) sum += Number(m.value ?? m.count ?? 0)
  return sum
}

export function samples(families: PromFamily[], name: string, labels: Record<string, string> = {}): PromMetric[] {
  return families.find((x) => x.name === name)?.metrics.filter((m) => matches(m, labels)) ?? []
}
