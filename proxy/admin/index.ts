// The sidecar's admin endpoint (loopback): health, readiness, redacted config dump, certificates,
// clusters and metrics. It reads sidecar state through AdminSource and never mutates it.
export { createAdminServer, listenServer, type AdminSource } from './server.js'
