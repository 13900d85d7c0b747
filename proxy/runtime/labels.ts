import type { ClusterConfig, SidecarConfig } from '../config/schema.js'
import { parseSpiffeId } from '../identity/index.js'
import { UNKNOWN_WORKLOAD, type WorkloadLabels } from '../stages/index.js'

/** The workload's name as Istio's labels and the trace resource use it. */
export function workloadName(c: SidecarConfig): string {
  return c.workload.name ?? c.workload.labels.app ?? c.workload.serviceAccount
}

/** This workload's labels: the destination inbound (reporter=destination), the source outbound. */
export function selfLabels(c: SidecarConfig, principal: string): WorkloadLabels {
  const workload = workloadName(c)
  const ns = c.workload.namespace
  return { workload, namespace: ns, principal, app: c.workload.labels.app ?? workload, service: `${workload}.${ns}.svc.cluster.local`, serviceName: workload }
}

// A cluster's destination labels from its config: the longest host (the FQDN) as the service, and
// workload/namespace from the SPIFFE ID secure naming requires, when there is exactly one.
export function clusterLabels(cl: Pick<ClusterConfig, 'name' | 'hosts' | 'identities'>): WorkloadLabels {
  const service = cl.hosts.map((h) => h.replace(/:\d+$/, '').toLowerCase()).reduce((a, b) => (b.length > a.length ? b : a), '')
  const id = cl.identities.length === 1 ? parseSpiffeId(cl.identities[0]!) : null
  return {
    workload: id?.serviceAccount ?? UNKNOWN_WORKLOAD.workload,
    namespace: id?.namespace ?? UNKNOWN_WORKLOAD.namespace,
    principal: id?.uri ?? UNKNOWN_WORKLOAD.principal,
    app: id?.serviceAccount ?? UNKNOWN_WORKLOAD.app,
    service: service || cl.name,
    serviceName: cl.name.split('.')[0] ?? cl.name,
  }
}
