// Kubernetes as a control-plane source: list+watch of the policy CRDs (ours and Istio's), their
// Valid/Invalid status, TokenReview for sidecar bootstrap, the remora-ca-root ConfigMap, and
// discovery (EndpointSlices, Pods, Services → endpoints with the Services' VIPs and ports).
// From proxy/ it imports only the shared leaves' index.js (policy, snapshot, errors).
export { KubeApiError, connectionFromKubeConfig, createKubeClient, loadKubeConnection, type KubeClient, type KubeConnection, type KubeResponse, type WatchStream } from './client.js'
export { Reflector, keyOf, type KubeObject, type ReflectorEvent, type ReflectorOptions } from './reflector.js'
export { ISTIO_GROUP, KubernetesPolicySource, POLICY_RESOURCES, REMORA_GROUP, type KubernetesSourceOptions, type PolicyVerdict, type SourceLogger } from './source.js'
export { reviewServiceAccountToken, type TokenReviewResult } from './token-review.js'
export { TOKEN_AUDIENCE, createKubernetesPolicyFeed, createKubernetesTokenReviewer } from './feed.js'
export { CA_ROOT_CONFIGMAP, CA_ROOT_KEY, CaRootPublisher, type CaRootPublisherOptions } from './ca-publisher.js'
export { KubernetesEndpoints, createKubernetesDiscoveryFeed, type KubernetesEndpointsOptions, type MeshEndpoint } from './endpoints.js'
export { serviceFacts, type ServiceFacts } from './services.js'
