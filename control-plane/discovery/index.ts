// Discovery: sidecar registrations (service, identity, labels, inbound address) and platform
// endpoints (with their Services' VIPs and ports) → the clusters of every snapshot, with
// grace-period expiry of sidecars that are gone.
// registrations.ts is pure (no store, no clock); registry.ts keeps them in step with the store.
export { clustersFrom, isLive, type Registration, type ReplicaHeartbeat } from './registrations.js'
export { EndpointRegistry, type DiscoveryFeed, type EndpointRegistryOptions, type PlatformEndpoint } from './registry.js'
