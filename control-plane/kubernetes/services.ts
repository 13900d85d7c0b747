/* eslint-disable @typescript-eslint/no-explicit-any -- API server JSON: a Service's and its EndpointSlices' few fields read here */
import { isIP } from 'node:net'
import { declaredProtocol, type ClusterPort } from '../../proxy/snapshot/index.js'

// A Service → what its cluster says beside the endpoints: the virtual IPs an app dials (an
// intercepted connection to one of them is this cluster's, by original destination) and the TCP
// ports with their declared protocols and the pod ports behind them. Pure: the same Service and
// slices always give the same facts, in the Service's own order.

export interface ServiceFacts {
  /** spec.clusterIPs (IPv4 and IPv6, primary first); empty for a headless Service. */
  readonly addresses: readonly string[]
  /** The Service's TCP ports (UDP and SCTP do not cross the mesh). */
  readonly ports: readonly ClusterPort[]
}

const isPort = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535

/**
 * A named targetPort (`targetPort: http`) names a container port, which may differ from pod to pod;
 * the EndpointSlices carry what it resolved to, under the Service port's name. Resolved when every
 * slice that lists that port agrees, else left out.
 */
function resolveNamed(portName: string, slices: readonly any[]): number | undefined {
  const seen = new Set<number>()
  for (const s of slices) {
    for (const p of s.ports ?? []) {
      if ((p.name ?? '') === portName && (p.protocol ?? 'TCP') === 'TCP' && isPort(p.port)) seen.add(p.port)
    }
  }
  return seen.size === 1 ? [...seen][0] : undefined
}

export function serviceFacts(service: any, slices: readonly any[]): ServiceFacts {
  const spec = service?.spec ?? {}
  const ips: unknown[] = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0 ? spec.clusterIPs : spec.clusterIP !== undefined ? [spec.clusterIP] : []
  const addresses = [...new Set(ips.filter((ip): ip is string => typeof ip === 'string' && ip !== 'None' && isIP(ip) !== 0))]
  const ports: ClusterPort[] = []
  for (const p of Array.isArray(spec.ports) ? spec.ports : []) {
    if ((p.protocol ?? 'TCP') !== 'TCP' || !isPort(p.port)) continue
    if (ports.some((o) => o.port === p.port)) continue
    const name = typeof p.name === 'string' && p.name !== '' ? p.name : undefined
    const targetPort = isPort(p.targetPort) ? p.targetPort : typeof p.targetPort === 'string' ? resolveNamed(name ?? '', slices) : undefined
    const protocol = declaredProtocol(typeof p.appProtocol === 'string' ? p.appProtocol : null, name)
    ports.push({ port: p.port, ...(targetPort !== undefined ? { targetPort } : {}), ...(protocol !== null ? { protocol } : {}), ...(name !== undefined ? { name } : {}) })
  }
  return { addresses, ports }
}
