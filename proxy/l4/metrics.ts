import { CounterFamily, type SidecarMetrics } from '../telemetry/index.js'
import type { WorkloadLabels } from '../stages/index.js'

// Istio's TCP metrics, on the sidecar's registry, with Istio's TCP label set (the request set
// without response_code and grpc_response_status). Children are cached per label combination, as the request metrics are.

const TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_service',
  'destination_service_name',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const

export interface TcpChildren {
  readonly opened: { value: number }
  readonly closed: { value: number }
  readonly sent: { value: number }
  readonly received: { value: number }
}

export class TcpMetrics {
  readonly #opened: CounterFamily
  readonly #closed: CounterFamily
  readonly #sent: CounterFamily
  readonly #received: CounterFamily
  readonly #detection: CounterFamily
  readonly #refused: CounterFamily
  readonly #handshakes: CounterFamily
  readonly #cache = new Map<string, TcpChildren>()

  constructor(m: SidecarMetrics) {
    const r = m.registry
    this.#opened = new CounterFamily(r, 'istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric).', TCP_LABELS)
    this.#closed = new CounterFamily(r, 'istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric).', TCP_LABELS)
    this.#sent = new CounterFamily(r, 'istio_tcp_sent_bytes_total', 'Bytes sent to the downstream of a TCP connection (Istio standard metric).', TCP_LABELS)
    this.#received = new CounterFamily(r, 'istio_tcp_received_bytes_total', 'Bytes received from the downstream of a TCP connection (Istio standard metric).', TCP_LABELS)
    this.#detection = new CounterFamily(r, 'remora_protocol_detection_total', 'Outbound and inbound connections by how their protocol was chosen: declared, server_first, http1, h2, tls, tcp (bytes of no known protocol), timeout (the client sent nothing in time: TCP).', ['direction', 'result'])
    this.#handshakes = new CounterFamily(r, 'remora_tls_handshakes_total', 'mTLS connections this sidecar opened, by negotiated key-exchange group (X25519MLKEM768 where both ends have it, else X25519).', ['group'])
    this.#refused = new CounterFamily(r, 'remora_outbound_refused_total', 'Outbound connections or requests to a destination outside the mesh refused by the outbound traffic policy (REGISTRY_ONLY), by kind (tcp, tls, http).', ['kind'])
  }

  children(reporter: 'source' | 'destination', src: WorkloadLabels, dst: WorkloadLabels, security: string): TcpChildren {
    const key = `${reporter}\u0000${src.principal}\u0000${src.workload}\u0000${dst.principal}\u0000${dst.service}\u0000${security}`
    let c = this.#cache.get(key)
    if (c === undefined) {
      const labels = [reporter, src.workload, src.namespace, src.principal, src.app, dst.workload, dst.namespace, dst.principal, dst.service, dst.serviceName, 'tcp', '-', security]
      c = { opened: this.#opened.child(labels), closed: this.#closed.child(labels), sent: this.#sent.child(labels), received: this.#received.child(labels) }
      this.#cache.set(key, c)
    }
    return c
  }

  detected(direction: 'inbound' | 'outbound', result: string): void {
    this.#detection.child([direction, result]).value++
  }

  tlsHandshake(group: string): void {
    this.#handshakes.child([group]).value++
  }

  refused(kind: 'tcp' | 'tls' | 'http'): void {
    this.#refused.child([kind]).value++
  }
}
