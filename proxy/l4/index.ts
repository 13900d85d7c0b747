// The connection-level engine (TCP and TLS passthrough): protocol detection on first bytes and
// ClientHello SNI, the routing table by original destination and SNI with the outbound traffic
// policy, the mesh hop for TCP (mTLS, ALPN remora-tcp, target port in the SNI), L4 authorization
// on the inbound side, Istio's TCP metrics, and one access-log line per connection.
export { detect, detectDirect, parseClientHello, H2_PREFACE, type ClientHello, type Detected } from './detect.js'
export { meshServername, targetPortOf } from './sni.js'
export { relay, type RelayResult } from './relay.js'
export { HostAddresses } from './resolve.js'
export { TcpMetrics, type TcpChildren } from './metrics.js'
export { canonicalIp } from '../engines/common/index.js'
export {
  DEFAULT_OUTBOUND_POLICY,
  OUTBOUND_POLICY_MODES,
  buildL4Table,
  externalAllowed,
  matchDestination,
  matchHost,
  matchName,
  type L4Cluster,
  type L4ClusterInput,
  type L4Match,
  type L4Table,
  type OutboundPolicy,
  type OutboundPolicyMode,
} from './routes.js'
export { OutboundConnections, TCP_IDLE_MS, tcpAccessLogEntry, type L4Env } from './outbound.js'
export { InboundConnections, type InboundTcpFacts, type InboundTcpPolicy } from './inbound.js'
