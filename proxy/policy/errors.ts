// The one catalog of policy validation issues: every error and warning the validator can report,
// with a stable code that callers (CLI, control plane NACKs, docs) match on. docs/policy.md keeps
// a table of these codes; test/unit/policy/docs.test.ts fails when the two drift apart.

export type PolicyIssueSeverity = 'error' | 'warning'

export interface PolicyIssueSpec {
  readonly severity: PolicyIssueSeverity
  readonly description: string
}

export const POLICY_ISSUES = {
  // --- document level ---
  REMORA_ERR_POLICY_PARSE: { severity: 'error', description: 'The file is not valid YAML or JSON (the message carries the line).' },
  REMORA_ERR_POLICY_NOT_OBJECT: { severity: 'error', description: 'A document is not a mapping (for example a bare string or a list).' },
  REMORA_ERR_POLICY_API_VERSION: {
    severity: 'error',
    description: 'apiVersion is not one of security.remora.dev/v1, security.istio.io/v1, security.istio.io/v1beta1.',
  },
  REMORA_ERR_POLICY_KIND: { severity: 'error', description: 'kind is not a policy kind remora knows.' },
  REMORA_ERR_POLICY_DUPLICATE: { severity: 'error', description: 'Two documents declare the same kind, namespace and name.' },
  // --- structure ---
  REMORA_ERR_POLICY_MISSING_FIELD: { severity: 'error', description: 'A required field is missing (metadata.name, metadata.namespace, spec, when[].key…).' },
  REMORA_ERR_POLICY_UNKNOWN_FIELD: { severity: 'error', description: 'A field that does not exist in the schema (often a typo); never silently ignored.' },
  REMORA_ERR_POLICY_UNSUPPORTED_FIELD: {
    severity: 'error',
    description: 'A field Istio defines but remora does not implement (for example serviceAccounts, trustDomains, provider).',
  },
  REMORA_ERR_POLICY_WRONG_TYPE: { severity: 'error', description: 'A value has the wrong type (a number where a string list is expected…).' },
  REMORA_ERR_POLICY_EMPTY_LIST: { severity: 'error', description: 'A list is present but empty, which would silently match nothing or everything.' },
  REMORA_ERR_POLICY_EMPTY_VALUE: { severity: 'error', description: 'An empty string inside a value list.' },
  REMORA_ERR_POLICY_BAD_NAME: { severity: 'error', description: 'metadata.name or metadata.namespace is not a valid Kubernetes name.' },
  REMORA_ERR_POLICY_BAD_TIMESTAMP: { severity: 'error', description: 'metadata.creationTimestamp is not an RFC 3339 date-time.' },
  REMORA_ERR_POLICY_BAD_SELECTOR: { severity: 'error', description: 'selector.matchLabels has an invalid label key or value, or a wildcard.' },
  REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED: {
    severity: 'error',
    description: 'targetRef/targetRefs (Gateway API attachment) is not supported; use selector.matchLabels.',
  },
  // --- AuthorizationPolicy ---
  REMORA_ERR_POLICY_BAD_ACTION: { severity: 'error', description: 'action is not ALLOW, DENY or AUDIT.' },
  REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED: { severity: 'error', description: 'action: CUSTOM (external authorization) is not supported.' },
  REMORA_ERR_POLICY_EMPTY_SOURCE: { severity: 'error', description: 'A from[] entry has no source, or a source with no field set.' },
  REMORA_ERR_POLICY_EMPTY_OPERATION: { severity: 'error', description: 'A to[] entry has no operation, or an operation with no field set.' },
  REMORA_ERR_POLICY_BAD_PRINCIPAL: {
    severity: 'error',
    description: 'A principal is not a SPIFFE ID (with or without spiffe://) nor a *, prefix* or *suffix pattern of one.',
  },
  REMORA_ERR_POLICY_BAD_NAMESPACE: { severity: 'error', description: 'A namespace value is not a valid namespace name or pattern.' },
  REMORA_ERR_POLICY_BAD_WILDCARD: {
    severity: 'error',
    description: 'A * that is not a whole value, a prefix or a suffix (for example /api/*/users: use the {*} path template).',
  },
  REMORA_ERR_POLICY_BAD_IP: { severity: 'error', description: 'An ipBlocks/remoteIpBlocks/source.ip value is not an IPv4/IPv6 address or CIDR.' },
  REMORA_ERR_POLICY_BAD_PORT: { severity: 'error', description: 'A port is not an integer in 0..65535 (1..65535 for portLevelMtls).' },
  REMORA_ERR_POLICY_BAD_PATH: {
    severity: 'error',
    description: 'A path can never match a normalized request path (no leading /, contains ? or #).',
  },
  REMORA_ERR_POLICY_BAD_PATH_TEMPLATE: {
    severity: 'error',
    description: 'A path template is malformed: {**} not last, {name} variables, a template mixed with * or with literals in one segment.',
  },
  REMORA_ERR_POLICY_TEMPLATE_NOT_ALLOWED: { severity: 'error', description: 'A {*}/{**} path template outside paths/notPaths.' },
  REMORA_ERR_POLICY_WHEN_KEY_UNKNOWN: { severity: 'error', description: 'A when[].key that is not an Istio condition key.' },
  REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED: {
    severity: 'error',
    description: 'A when[].key Istio knows but remora does not support (experimental.*, destination.labels, source.serviceAccount…).',
  },
  REMORA_ERR_POLICY_BAD_WHEN_KEY: { severity: 'error', description: 'A when[].key with malformed brackets (request.headers[], claims[a]b).' },
  REMORA_ERR_POLICY_WHEN_NO_VALUES: { severity: 'error', description: 'A when[] condition with neither values nor notValues.' },
  // --- PeerAuthentication ---
  REMORA_ERR_POLICY_BAD_MTLS_MODE: { severity: 'error', description: 'mtls.mode is not STRICT, PERMISSIVE, DISABLE or UNSET.' },
  REMORA_ERR_POLICY_PORT_MTLS_NO_SELECTOR: {
    severity: 'error',
    description: 'portLevelMtls on a namespace- or mesh-wide PeerAuthentication (Istio requires a selector).',
  },
  // --- RequestAuthentication ---
  REMORA_ERR_POLICY_JWKS_SOURCE: {
    severity: 'error',
    description: 'A jwtRule sets both jwks and jwksUri, or neither (OpenID Connect discovery is not supported).',
  },
  REMORA_ERR_POLICY_JWKS_URI: {
    severity: 'error',
    description: 'jwksUri is not an absolute https:// URL (http:// only to a loopback host), or carries credentials.',
  },
  REMORA_ERR_POLICY_JWKS: {
    severity: 'error',
    description: 'Inline jwks is not a JSON key set of public RSA, EC or Ed25519 signing keys (HMAC keys, private keys and unknown types are refused).',
  },
  REMORA_ERR_POLICY_BAD_HEADER_NAME: {
    severity: 'error',
    description: 'A fromHeaders, fromCookies or output header name is not a valid name, or is one the sidecar owns (host, x-forwarded-client-cert, x-remora-*, x-envoy-*…).',
  },
  REMORA_ERR_POLICY_BAD_DURATION: { severity: 'error', description: 'A jwtRule timeout is not a duration in 1ms..60s ("5s", "500ms").' },
  // --- warnings: accepted, but probably not what was meant ---
  REMORA_WARN_POLICY_TRUST_DOMAIN: { severity: 'warning', description: 'A principal names a trust domain the mesh does not use (options.trustDomains).' },
  REMORA_WARN_POLICY_SELECTOR_NO_MATCH: { severity: 'warning', description: 'The selector matches none of the known workloads.' },
  REMORA_WARN_POLICY_DENY_NO_RULES: { severity: 'warning', description: 'A DENY policy without rules never denies anything (Istio rejects it).' },
  REMORA_WARN_POLICY_DRY_RUN_VALUE: {
    severity: 'warning',
    description: 'A dry-run annotation whose value is not exactly "true" or "false" (read as Go strconv.ParseBool would, else enforced).',
  },
  REMORA_WARN_POLICY_DRY_RUN_IGNORED: { severity: 'warning', description: 'A dry-run annotation on a kind that has no dry run (PeerAuthentication).' },
  REMORA_WARN_POLICY_EMPTY_SELECTOR: { severity: 'warning', description: 'A selector with no labels selects every workload of the namespace.' },
  REMORA_WARN_POLICY_ROOT_SELECTOR_IGNORED: {
    severity: 'warning',
    description: 'A PeerAuthentication with a selector in the root namespace is ignored (Istio ignores it too).',
  },
  REMORA_WARN_POLICY_METHOD_CASE: { severity: 'warning', description: 'A method that is not upper case; methods match case-sensitively.' },
  REMORA_WARN_POLICY_PATH_NOT_NORMALIZED: {
    severity: 'warning',
    description: 'A path that normalization changes (//, /./, /../, %2e…), so it can never equal a request path.',
  },
} as const satisfies Record<string, PolicyIssueSpec>

export type PolicyIssueCode = keyof typeof POLICY_ISSUES

/** One validation finding. `path` is the JSON path inside the document (`spec.rules[0].from[0].source.principals[1]`). */
export interface PolicyIssue {
  readonly code: PolicyIssueCode
  readonly severity: PolicyIssueSeverity
  readonly path: string
  readonly message: string
  /** File (or other origin) of the document, set by validateDocuments(). */
  readonly source?: string
  /** 0-based index of the document in its file, set by validateDocuments(). */
  readonly doc?: number
  /** 1-based line of the document (or of the parse error) in its file, when known. */
  readonly line?: number
}

export function policyIssue(code: PolicyIssueCode, path: string, message: string): PolicyIssue {
  return { code, severity: POLICY_ISSUES[code].severity, path, message }
}

/** `path: message (code)`, the one-line form used by the CLI and in NACK messages. */
export function formatPolicyIssue(i: PolicyIssue): string {
  const where = i.source !== undefined ? `${i.source}${i.doc !== undefined ? `#${i.doc}` : ''}${i.line !== undefined ? `:${i.line}` : ''}: ` : ''
  return `${where}${i.path || '(document)'}: ${i.message} (${i.code})`
}
