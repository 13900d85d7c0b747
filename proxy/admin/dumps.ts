import type { JwksRegistry } from '../authn/index.js'
import type { SidecarConfig } from '../config/schema.js'
import type { Clock } from '../deps.js'
import type { RuntimeState, EffectiveJwtSettings } from '../runtime/index.js'
import { MESH_GROUPS, POST_QUANTUM, type CredentialStore } from '../tls/index.js'

// What /config_dump, /certs and /clusters show, built from the running state. Redacted by
// construction: file paths, issuers, kids and SPIFFE IDs; never a key, a token or a PEM private key.

export interface DumpSource {
  readonly config: SidecarConfig
  readonly selfId: string
  readonly state: RuntimeState
  readonly jwks: JwksRegistry
  readonly jwtSettings: EffectiveJwtSettings
}

export function configDump(s: DumpSource): unknown {
  const st = s.state
  return {
    version: st.configured ? st.version : null,
    appliedAt: st.configured ? st.appliedAt : null,
    config: s.config, // file paths only; key material is never part of the config
    identity: s.selfId,
    clusters: st.clusterConfigs,
    mtls: { mode: st.mtlsMode, policy: st.workloadPolicy.peerAuthn.policy },
    // What happens to destinations outside the mesh, and where the setting came from.
    outboundTrafficPolicy: { ...st.outboundPolicy, source: s.config.outbound.trafficPolicy ? 'sidecar' : st.meshOutboundPolicy ? 'control-plane' : 'default' },
    authorizationPolicies: st.workloadPolicy.authzPolicies.map((p) => ({ policy: p.policy, action: p.action, dryRun: p.dryRun })),
    policies: st.policies.map((p) => ({ kind: p.kind, namespace: p.metadata.namespace, name: p.metadata.name })),
    // Issuers, locations and where keys come from; never a key or a token.
    requestAuthentication: st.jwtRules.map((r) => ({ rule: r.id, issuer: r.issuer, audiences: r.audiences, jwks: r.jwksUri ?? 'inline', locations: r.locations, forwardOriginalToken: r.forwardOriginalToken })),
    jwks: s.jwks.status(),
    // The JWT settings in force (config.jwt unless the embedding code overrode a field).
    jwtSettings: s.jwtSettings,
  }
}

export function certsDump(creds: CredentialStore, clock: Clock): unknown {
  if (!creds.hasCredentials) return { identity: null, reason: 'no workload certificate yet (waiting for the control plane)' }
  const c = creds.current
  return {
    identity: c.identity.uri,
    serial: c.serial,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    expiresInSeconds: Math.round((c.notAfter.getTime() - clock.now()) / 1000),
    trustDomains: [...c.trustDomains],
    trustBundle: c.trustBundle,
    // Key exchange: the groups offered (post-quantum first where this runtime's OpenSSL has it) and
    // what the mTLS connections this sidecar opened negotiated.
    tls: { postQuantum: POST_QUANTUM, groups: MESH_GROUPS.split(':'), handshakes: Object.fromEntries(creds.handshakes) },
  }
}

export function clustersDump(config: SidecarConfig, st: RuntimeState, poolStats: readonly { key: string }[]): unknown {
  const stats = new Map(poolStats.map((s) => [s.key, s]))
  const statFor = (address: string): unknown => [...stats.values()].find((s) => s.key.includes(`|${address}|`)) ?? null
  return {
    inbound: { cluster: st.app.cluster, address: config.inbound.app ?? null, pool: config.inbound.app ? statFor(config.inbound.app) : null },
    outbound: st.clusters.map((cl) => ({
      name: cl.name,
      hosts: st.clusterConfigs.find((x) => x.name === cl.name)?.hosts ?? [],
      identities: st.clusterConfigs.find((x) => x.name === cl.name)?.identities ?? [],
      endpoints: cl.targets.map((t) => ({ address: t.address, timeoutMs: t.timeoutMs, pool: statFor(t.address) })),
    })),
  }
}
