import type { PolicyDocument, PolicyIssue } from '../../proxy/policy/index.js'
import type { KubeClient } from './client.js'
import { KubernetesPolicySource, type SourceLogger } from './source.js'
import { reviewServiceAccountToken } from './token-review.js'

// The two seams `remora control-plane --source kubernetes` plugs into the control plane: the
// policy feed (the CRDs' valid set replaces the store's policies/) and the bootstrap token
// reviewer (projected service-account tokens, audience `remora`). Shaped to the control plane's
// PolicyFeed and TokenReviewer without importing it.

/** The audience the injector projects the sidecar's token for. */
export const TOKEN_AUDIENCE = 'remora'

export function createKubernetesPolicyFeed(
  client: KubeClient,
  o: { istio?: boolean | 'auto'; logger?: SourceLogger; retryMs?: number } = {},
): {
  name: string
  start(ctx: { trustDomain: string; rootNamespace: string; onPolicies: (policies: PolicyDocument[], errors: PolicyIssue[]) => void }): Promise<{ close(): Promise<void> }>
} {
  return {
    name: 'kubernetes',
    start: (ctx) => KubernetesPolicySource.start(client, { ...o, trustDomain: ctx.trustDomain, rootNamespace: ctx.rootNamespace, onPolicies: ctx.onPolicies }),
  }
}

export function createKubernetesTokenReviewer(
  client: KubeClient,
  audience: string = TOKEN_AUDIENCE,
): (token: string) => Promise<{ ok: true; namespace: string; serviceAccount: string } | { ok: false; reason: string }> {
  return async (token) => {
    const r = await reviewServiceAccountToken(client, token, audience)
    return r.ok ? { ok: true, namespace: r.namespace, serviceAccount: r.serviceAccount } : r
  }
}
