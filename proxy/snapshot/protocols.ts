// The application protocol of a port, as Kubernetes and Istio spell it (Service port `appProtocol`,
// or the port name's prefix: `grpc-web`, `http2-api`, `tcp-db`), reduced to what the mesh does
// with it. One table, read by the control plane (Service ports → cluster ports) and the sidecar
// (declared ports win over detection).

/** What remora does with a connection: HTTP/1.x, HTTP/2 (gRPC is HTTP/2), opaque TCP, or TLS passthrough. */
export const PORT_PROTOCOLS = ['http', 'http2', 'grpc', 'tcp', 'tls'] as const
export type PortProtocol = (typeof PORT_PROTOCOLS)[number]

// Istio's "explicit protocol selection" names (case-insensitive) and Kubernetes' standard
// appProtocol values. `https` is TLS the app does itself: passed through, never terminated.
const SPELLINGS: Readonly<Record<string, PortProtocol>> = {
  http: 'http',
  'http-proxy': 'http',
  http2: 'http2',
  h2c: 'http2',
  'kubernetes.io/h2c': 'http2',
  grpc: 'grpc',
  'grpc-web': 'http',
  tcp: 'tcp',
  mongo: 'tcp',
  mysql: 'tcp',
  redis: 'tcp',
  postgres: 'tcp',
  postgresql: 'tcp',
  tls: 'tls',
  https: 'tls',
  'kubernetes.io/ws': 'http',
  'kubernetes.io/wss': 'tls',
}

/**
 * The declared protocol of a port: `appProtocol` first, then the port name (`<protocol>[-<suffix>]`),
 * or null (undeclared: the sidecar detects it from the first bytes).
 */
export function declaredProtocol(appProtocol: string | undefined | null, portName: string | undefined | null): PortProtocol | null {
  if (appProtocol) {
    const p = SPELLINGS[appProtocol.toLowerCase()]
    if (p) return p
  }
  if (portName) {
    const lower = portName.toLowerCase()
    const exact = SPELLINGS[lower]
    if (exact) return exact
    const dash = lower.indexOf('-')
    if (dash > 0) {
      const p = SPELLINGS[lower.slice(0, dash)]
      if (p) return p
    }
  }
  return null
}

/**
 * Server-first and other protocols a client never speaks first or that detection would break:
 * Linkerd's default opaque ports (SMTP 25 and 587, MySQL 3306 and 33060, Galera 4444, Postgres
 * 5432, Redis 6379, Elasticsearch 9300, memcached 11211). Connections to them are TCP at once,
 * never held for detection.
 */
export const SERVER_FIRST_PORTS: ReadonlySet<number> = new Set([25, 587, 3306, 4444, 5432, 6379, 9300, 11211, 33060])
