// The sidecar's admin endpoint (loopback): health, readiness, redacted config dump, certificates,
// clusters and metrics, and the dumps themselves (built from the running state, secrets never in
// them). It reads sidecar state through AdminSource and never mutates it.
export { createAdminServer, listenServer, type AdminSource } from './server.js'
export { certsDump, clustersDump, configDump, type DumpSource } from './dumps.js'
