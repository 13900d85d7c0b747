import http from 'node:http'
import type net from 'node:net'

export interface AdminSource {
  isLive(): boolean
  isReady(): { ready: boolean; reason: string }
  configDump(): unknown
  certs(): unknown
  clusters(): unknown
  metrics?(): Promise<{ contentType: string; body: string }>
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

/**
 * The admin endpoint (:15000, loopback by default, as Envoy's): /live, /ready, /config_dump
 * (secrets redacted), /certs, /clusters, /metrics. Read-only: nothing here changes the sidecar.
 */
export function createAdminServer(src: AdminSource): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' })
    switch (path) {
      case '/live':
      case '/healthz':
        return json(res, src.isLive() ? 200 : 503, { live: src.isLive() })
      case '/ready':
      case '/healthz/ready': {
        const r = src.isReady()
        return json(res, r.ready ? 200 : 503, r)
      }
      case '/config_dump':
        return json(res, 200, src.configDump())
      case '/certs':
        return json(res, 200, src.certs())
      case '/clusters':
        return json(res, 200, src.clusters())
      case '/metrics':
      case '/stats/prometheus':
        if (!src.metrics) return json(res, 404, { error: 'metrics not enabled' })
        src.metrics().then(
          (m) => {
            res.writeHead(200, { 'content-type': m.contentType })
            res.end(m.body)
          },
          () => json(res, 500, { error: 'metrics unavailable' }),
        )
        return
      case '/':
        return json(res, 200, { endpoints: ['/live', '/ready', '/config_dump', '/certs', '/clusters', '/metrics'] })
      default:
        return json(res, 404, { error: 'not found' })
    }
  })
}

export function listenServer(server: http.Server | net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port, host, exclusive: true }, () => {
      server.removeListener('error', reject)
      resolve((server.address() as net.AddressInfo).port)
    })
  })
}
