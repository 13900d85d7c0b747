// Envoy's response flags (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage),
// plus remora's own two-letter flags for authorization (AZ) and JWT (JW) denials.
export const FLAGS = {
  NoRoute: 'NR',
  NoClusterFound: 'NC',
  NoHealthyUpstream: 'UH',
  UpstreamConnectionFailure: 'UF',
  UpstreamConnectionTermination: 'UC',
  UpstreamRemoteReset: 'UR',
  UpstreamRequestTimeout: 'UT',
  UpstreamProtocolError: 'UPE',
  DownstreamConnectionTermination: 'DC',
  DownstreamProtocolError: 'DPE',
  StreamIdleTimeout: 'SI',
  AuthzDenied: 'AZ',
  JwtDenied: 'JW',
} as const

export type ResponseFlag = (typeof FLAGS)[keyof typeof FLAGS]
