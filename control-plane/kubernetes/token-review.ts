import type { KubeClient } from './client.js'

// Bootstrap in Kubernetes: the sidecar presents its projected service-account token; the API
// server says whose it is (TokenReview), for our audience only. The token is never logged.

export type TokenReviewResult =
  | { readonly ok: true; readonly namespace: string; readonly serviceAccount: string; readonly podName: string | null }
  | { readonly ok: false; readonly reason: string }

export async function reviewServiceAccountToken(client: KubeClient, token: string, audience: string): Promise<TokenReviewResult> {
  const r = await client.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token, audiences: [audience] },
  })
  if (r.status !== 201 && r.status !== 200) return { ok: false, reason: `TokenReview failed: HTTP ${r.status}` }
  const st = r.body?.status ?? {}
  if (st.authenticated !== true) return { ok: false, reason: st.error ? `token refused: ${String(st.error).slice(0, 200)}` : 'token refused' }
  if (!Array.isArray(st.audiences) || !st.audiences.includes(audience)) return { ok: false, reason: `token is not for audience ${audience}` }
  const m = /^system:serviceaccount:([a-z0-9-]+):([a-z0-9.-]+)$/.exec(String(st.user?.username ?? ''))
  if (!m) return { ok: false, reason: 'not a service-account token' }
  const pod = st.user?.extra?.['authentication.kubernetes.io/pod-name']
  return { ok: true, namespace: m[1]!, serviceAccount: m[2]!, podName: Array.isArray(pod) && typeof pod[0] === 'string' ? pod[0] : null }
}
