// Scrapes a sidecar's Prometheus endpoint over HTTP and parses the text with an independent
// parser (parse-prometheus-text-format, prom2json's shape), so a malformed exposition fails tests.
import http from 'node:http'
import parsePrometheusTextFormat, { type PromFamily, type PromMetric } from 'parse-prometheus-text-format'

export type { PromFamily, PromMetric }

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
  return { contentType, text, families: parsePrometheusTextFormat(text) }
}

const matches = (m: PromMetric, labels: Record<string, string>): boolean => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)

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
