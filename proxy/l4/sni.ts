// The SNI of a sidecar-to-sidecar connection says which workload port it is for, as Istio spells
// it: `outbound_.<port>_._.<cluster>`. The inbound side forwards to that port of the app; a plain
// cluster name (what HTTP/1.1 pools have always sent) means the workload's default app port.

const MESH_SNI = /^outbound_\.(\d{1,5})_\._\.(.+)$/

export function meshServername(cluster: string, targetPort: number | null): string {
  return targetPort === null ? cluster : `outbound_.${targetPort}_._.${cluster}`
}

/** The target port a peer asked for in its SNI, or null (the default app port). */
export function targetPortOf(servername: string | false | null | undefined): number | null {
  if (!servername) return null
  const m = MESH_SNI.exec(servername)
  if (!m) return null
  const p = Number(m[1])
  return p >= 1 && p <= 65535 ? p : null
}
