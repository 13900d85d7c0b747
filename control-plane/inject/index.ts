// Sidecar injection for Kubernetes: a pod template → the same pod with the remora sidecar (native
// by default, legacy on request), the interception init container and the projected token (pure),
// manifests for `remora inject -f`, AdmissionReview → JSONPatch, and the HTTPS webhook.
// From proxy/ it imports only the shared leaves (snapshot's port protocols, errors).
export { INJECT_ERRORS, InjectError, isInjectError, type InjectErrorCode } from './errors.js'
export {
  ANNOTATIONS,
  CA_FILE,
  INIT_CONTAINER,
  InjectConfigSchema,
  NAMESPACE_LABEL,
  NAMESPACE_LABEL_VALUE,
  PROXY_PORTS,
  PROXY_UID,
  SIDECAR_CONTAINER,
  STATE_VOLUME,
  TOKEN_VOLUME,
  createInjectConfig,
  type InjectConfig,
  type InjectConfigInput,
} from './config.js'
export { injectPod, readyScript, type ContainerLike, type InjectContext, type InjectOutcome, type InjectionStatus, type PodLike, type PodPort, type ServiceLike } from './pod.js'
export { createJsonPatch, pointerSegment, type JsonPatchOp } from './patch.js'
export { injectManifests, injectObject, type DocumentReport, type ManifestInjection } from './workloads.js'
export { ADMISSION_API_VERSION, parseAdmissionReview, reviewAdmission, type AdmissionResponse, type AdmissionReviewOut, type ReviewResult } from './admission.js'
export { InjectionWebhook, WEBHOOK_PATH, type WebhookLogger, type WebhookOptions } from './webhook.js'
