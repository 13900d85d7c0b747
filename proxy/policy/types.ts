// Plain data: the policy documents as validated, the request facts evaluate() reads, and the
// Decision it returns. Field names are Istio's so that existing policies carry over unchanged.

import type { RequestAuthentication } from './request-authn.js'

export const API_VERSIONS = ['security.remora.dev/v1', 'security.istio.io/v1', 'security.istio.io/v1beta1'] as const
export type ApiVersion = (typeof API_VERSIONS)[number]

export const DEFAULT_ROOT_NAMESPACE = 'remora-system'
export const DRY_RUN_ANNOTATIONS = ['remora.dev/dry-run', 'istio.io/dry-run'] as const

export interface ObjectMeta {
  name: string
  namespace: string
  annotations?: Record<string, string>
  labels?: Record<string, string>
  /** RFC 3339; decides which of several PeerAuthentications at one level wins (oldest). */
  creationTimestamp?: string
  [k: string]: unknown
}

export interface WorkloadSelector {
  matchLabels?: Record<string, string>
}

export interface Source {
  principals?: string[]
  notPrincipals?: string[]
  requestPrincipals?: string[]
  notRequestPrincipals?: string[]
  namespaces?: string[]
  notNamespaces?: string[]
  ipBlocks?: string[]
  notIpBlocks?: string[]
  remoteIpBlocks?: string[]
  notRemoteIpBlocks?: string[]
}

export interface Operation {
  hosts?: string[]
  notHosts?: string[]
  ports?: string[]
  notPorts?: string[]
  methods?: string[]
  notMethods?: string[]
  paths?: string[]
  notPaths?: string[]
}

export interface Condition {
  key: string
  values?: string[]
  notValues?: string[]
}

export interface Rule {
  from?: { source: Source }[]
  to?: { operation: Operation }[]
  when?: Condition[]
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT'

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector
  action?: AuthzAction
  rules?: Rule[]
}

export interface AuthorizationPolicy {
  apiVersion: ApiVersion
  kind: 'AuthorizationPolicy'
  metadata: ObjectMeta
  spec: AuthorizationPolicySpec
}

export type MtlsModeInput = 'STRICT' | 'PERMISSIVE' | 'DISABLE' | 'UNSET'
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE'

export interface PeerAuthenticationSpec {
  selector?: WorkloadSelector
  mtls?: { mode?: MtlsModeInput }
  /** Keys are port numbers as strings (YAML/JSON map keys). */
  portLevelMtls?: Record<string, { mode?: MtlsModeInput }>
}

export interface PeerAuthentication {
  apiVersion: ApiVersion
  kind: 'PeerAuthentication'
  metadata: ObjectMeta
  spec: PeerAuthenticationSpec
}

/** A validated policy document. */
export type PolicyDocument = AuthorizationPolicy | PeerAuthentication | RequestAuthentication
export type PolicyKind = PolicyDocument['kind']

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface RequestAuth {
  /** `<iss>/<sub>` as Istio writes request principals. */
  principal: string
  audiences: string[]
  presenter: string | null
  claims: Record<string, unknown>
}

export interface RequestFacts {
  source: {
    /** Full SPIFFE ID (`spiffe://td/ns/x/sa/y`) of the verified peer certificate; null for plaintext. */
    principal: string | null
    namespace: string | null
    /** Peer address of the connection (Envoy's direct_remote_ip). */
    ip: string
    /** Original client address (X-Forwarded-For / proxy protocol); falls back to `ip` when absent, as Envoy's remote_ip does. */
    remoteIp?: string
  }
  destination: { port: number; ip?: string }
  request: {
    method: string
    /** The :authority / Host header as received (port included if the client sent one). */
    host: string
    /** Normalized path, without query or fragment (see normalizePath()). */
    path: string
    /** Lower-case header names. */
    headers: Readonly<Record<string, string | string[] | undefined>>
    sni?: string
    /** Filled by JWT authentication (RequestAuthentication); null when no token was validated. */
    auth: RequestAuth | null
  }
}

export interface DryRunResult {
  policy: string
  action: AuthzAction
  matched: boolean
  ruleIndex: number | null
}

export interface Decision {
  action: 'ALLOW' | 'DENY'
  /** `namespace/name` of the policy that decided; null for a default decision. */
  policy: string | null
  ruleIndex: number | null
  reason: string
  dryRun: DryRunResult[]
  audit: { policy: string; ruleIndex: number } | null
}
