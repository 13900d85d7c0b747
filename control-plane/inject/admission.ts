import { z } from 'zod'
import type { InjectConfig } from './config.js'
import { InjectError, isInjectError } from './errors.js'
import { createJsonPatch, type JsonPatchOp } from './patch.js'
import { injectPod, type PodLike } from './pod.js'

// AdmissionReview (admission.k8s.io/v1) in → AdmissionReview out, with a JSONPatch when the pod
// gets the sidecar. Pure. The namespace label check is the webhook configuration's
// namespaceSelector (remora-injection=enabled): the API server only calls us for those namespaces.

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1'

const AdmissionRequestSchema = z.looseObject({
  uid: z.string().min(1),
  kind: z.looseObject({ group: z.string(), version: z.string(), kind: z.string() }),
  resource: z.looseObject({ group: z.string(), version: z.string(), resource: z.string() }).optional(),
  subResource: z.string().optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  operation: z.string().optional(),
  object: z.unknown().optional(),
  dryRun: z.boolean().optional(),
})

const AdmissionReviewSchema = z.looseObject({
  apiVersion: z.literal(ADMISSION_API_VERSION),
  kind: z.literal('AdmissionReview'),
  request: AdmissionRequestSchema,
})

export interface AdmissionResponse {
  readonly uid: string
  readonly allowed: boolean
  readonly patchType?: 'JSONPatch'
  /** base64 of the JSON array of operations. */
  readonly patch?: string
  readonly warnings?: readonly string[]
  readonly status?: { readonly code: number; readonly message: string; readonly reason?: string }
}

export interface AdmissionReviewOut {
  readonly apiVersion: typeof ADMISSION_API_VERSION
  readonly kind: 'AdmissionReview'
  readonly response: AdmissionResponse
}

export interface ReviewResult {
  readonly review: AdmissionReviewOut
  /** For the webhook's log line: injected, or why not. */
  readonly outcome: string
  readonly patch: readonly JsonPatchOp[]
}

/** Parses the request body; a malformed review is the HTTP request's error (400), not a denial. */
export function parseAdmissionReview(body: unknown): z.infer<typeof AdmissionReviewSchema> {
  const r = AdmissionReviewSchema.safeParse(body)
  if (!r.success) {
    const first = r.error.issues[0]!
    throw new InjectError('REMORA_ERR_INJECT_BAD_REVIEW', `${first.path.join('.') || '(root)'}: ${first.message}`)
  }
  return r.data
}

const out = (response: AdmissionResponse): AdmissionReviewOut => ({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response })

export function reviewAdmission(body: unknown, cfg: InjectConfig): ReviewResult {
  const { request } = parseAdmissionReview(body)
  const { uid } = request
  const isPodCreate = request.kind.group === '' && request.kind.kind === 'Pod' && (request.operation ?? 'CREATE') === 'CREATE' && !request.subResource
  if (!isPodCreate) {
    return { review: out({ uid, allowed: true }), outcome: `not a pod creation (${request.kind.kind} ${request.operation ?? ''})`, patch: [] }
  }
  const pod = request.object as PodLike
  try {
    const r = injectPod(pod, cfg, { namespace: request.namespace, workloadName: workloadName(pod) })
    const warnings = r.warnings.length ? { warnings: r.warnings.map((w) => `remora: ${w}`) } : {}
    if (!r.injected) return { review: out({ uid, allowed: true, ...warnings }), outcome: r.reason, patch: [] }
    const patch = createJsonPatch(pod, r.pod)
    return {
      review: out({ uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64'), ...warnings }),
      outcome: 'injected',
      patch,
    }
  } catch (err) {
    if (!isInjectError(err)) throw err
    // Refused clearly rather than admitted without the sidecar: a pod that should be in the mesh
    // and is not would serve plaintext without authorization. The message reaches the
    // ReplicaSet's events (`kubectl describe rs`).
    return {
      review: out({ uid, allowed: false, status: { code: err.status, reason: 'BadRequest', message: `remora injection refused (${err.code}): ${err.message}` } }),
      outcome: err.code,
      patch: [],
    }
  }
}

/** A Deployment's pods are owned by `<deployment>-<pod-template-hash>`; other owners name the workload. */
function workloadName(pod: PodLike): string | undefined {
  const meta = pod?.metadata
  if (!meta) return undefined
  const hash = meta.labels?.['pod-template-hash']
  const strip = (n: string): string => (hash && n.endsWith(`-${hash}`) ? n.slice(0, -hash.length - 1) : n)
  const owner = (meta.ownerReferences as { name?: unknown }[] | undefined)?.find((o) => typeof o.name === 'string')
  if (owner) return strip(owner.name as string)
  if (meta.generateName) return strip(meta.generateName.replace(/-$/, ''))
  return meta.name
}
