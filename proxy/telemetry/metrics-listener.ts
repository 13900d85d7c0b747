import http from 'node:http'
import type { SidecarMetrics } from './metrics.js'

/**
 * Istio's Prometheus port (15090): `/stats/prometheus` (and `/metrics`) only, nothing else, so it can
 * be exposed to the scraper while the admin port stays on loopback.
 */
export function createMetricsListener(metrics: SidecarMetrics): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if ((req.method === 'GET' || req.method === 'HEAD') && (path === '/stats/prometheus' || path === '/metrics')) {
      metrics.scrape().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' })
          res.end(req.method === 'HEAD' ? undefined : m.body)
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain' })
          res.end('metrics unavailable\n')
        },
      )
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found: this port serves /stats/prometheus\n')
  })
}
