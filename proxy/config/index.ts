// Sidecar configuration: the SidecarConfig schema, loading it from sidecar.yaml + flags, the
// credentials and policy files it names, and the policy file watcher. Errors name the field.
export { validateSidecarConfig, parseDuration, parseHostPort, formatPath, SidecarConfigSchema, type SidecarConfig, type SidecarConfigInput, type ClusterConfig, type ConfigIssue } from './schema.js'
export { ConfigError, loadSidecarConfig, loadCredentials, loadPolicies, resolveFrom, setPath } from './load.js'
export { readPolicySources } from './policy-files.js'
export { watchPolicyFiles } from './watch.js'
