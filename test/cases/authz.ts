// The authorization case table: one row per behaviour of Istio's AuthorizationPolicy, each citing
// the Istio document or test it comes from. The same rows run against evaluate(), against
// `remora check`, and (a replayable subset) against a running sidecar with real mTLS callers.
import type { PathNormalization, PolicyIssueCode, RequestFacts } from '../../proxy/policy/index.js'
import { normalizePath } from '../../proxy/policy/index.js'

export interface CaseRequest {
  /** Default GET. */
  method?: string
  /** The raw request target as a client sends it (may carry a query, `//`, `%2e`…). */
  path: string
  /** :authority; default `orders.shop`. */
  host?: string
  /** Lower-case names. */
  headers?: Record<string, string | string[]>
  /** Full SPIFFE ID of the caller's certificate; null/absent = plaintext caller. */
  sourcePrincipal?: string | null
  /** Peer address; default 10.1.2.3. */
  sourceIp?: string
  /** X-Forwarded-For derived client address (Envoy's remote_ip). */
  remoteIp?: string
  /** Destination (workload) port; default 8080. */
  port?: number
  destinationIp?: string
  sni?: string
  /** A validated JWT (filled by RequestAuthentication later): `iss/sub` and its claims. */
  jwt?: { principal: string; claims?: Record<string, unknown> }
}

export interface AuthzCase {
  name: string
  /** The Istio document URL or test file the behaviour comes from. */
  source: string
  policies: Record<string, unknown>[]
  /** Destination workload; default namespace `shop`, labels `{ app: orders }`. */
  workload?: { namespace: string; labels: Record<string, string> }
  /** Path normalization the sidecar applies; default MERGE_SLASHES (remora's default). */
  pathNormalization?: PathNormalization
  request: CaseRequest
  expect: 'ALLOW' | 'DENY'
  /** `ns/name` of the deciding policy; null for a default decision. Unchecked when undefined. */
  policy?: string | null
  rule?: number | null
  /** 400 when the sidecar rejects the path before authorization; else 200/403 from `expect`. */
  status?: 200 | 403 | 400
  /** A substring the Decision reason must contain. */
  reason?: string
  /** Dry-run results expected in the Decision. */
  dryRun?: { policy: string; matched: boolean }[]
  /** The AUDIT policy expected to record the request. */
  audit?: string | null
}

export interface InvalidPolicyCase {
  name: string
  source: string
  policy: Record<string, unknown>
  code: PolicyIssueCode
  path: string
}

export const DEFAULT_WORKLOAD = { namespace: 'shop', labels: { app: 'orders' } } as const
export const DEFAULT_HOST = 'orders.shop'
export const DEFAULT_SOURCE_IP = '10.1.2.3'
export const DEFAULT_PORT = 8080

// ---------------------------------------------------------------------------------------------
// Sources

const ISTIO = 'https://istio.io/latest/docs'
const REF = `${ISTIO}/reference/config/security/authorization-policy/`
const COND = `${ISTIO}/reference/config/security/conditions/`
const CONCEPTS = `${ISTIO}/concepts/security/#authorization-policies`
const T_HTTP = `${ISTIO}/tasks/security/authorization/authz-http/`
const T_DENY = `${ISTIO}/tasks/security/authorization/authz-deny/`
const T_INGRESS = `${ISTIO}/tasks/security/authorization/authz-ingress/`
const T_JWT = `${ISTIO}/tasks/security/authorization/authz-jwt/`
const T_DRY = `${ISTIO}/tasks/security/authorization/authz-dry-run/`
const T_AUDIT = `${ISTIO}/tasks/observability/logs/audit/`
const BEST = `${ISTIO}/ops/best-practices/security/`
const GHSA_HOST = 'https://github.com/istio/istio/security/advisories/GHSA-7774-7vr3-cc8j'
const S_STRING = 'istio/istio pilot/pkg/security/authz/matcher/string_test.go'
const S_HEADER = 'istio/istio pilot/pkg/security/authz/matcher/header_test.go'
const S_TEMPLATE = 'istio/istio pilot/pkg/security/authz/matcher/template_test.go'
const S_GEN = 'istio/istio pilot/pkg/security/authz/model/generator_test.go'
const S_MODEL = 'istio/istio pilot/pkg/security/authz/model/model.go'
const S_BUILDER = 'istio/istio pilot/pkg/security/authz/builder/testdata/http/allow-full-rule-in.yaml'
const S_SELECT = 'istio/istio pilot/pkg/model/authorization.go (ListAuthorizationPolicies)'
const S_NORM = 'istio/istio tests/integration/security/normalization_test.go'
const S_AUTHZ_IT = 'istio/istio tests/integration/security/authz_test.go'
const S_ENVOY_TPL = 'envoyproxy/envoy source/extensions/path/uri_template_lib/uri_template_internal.cc'
const S_VALIDATION = 'istio/istio pkg/config/validation/validation.go (ValidateAuthorizationPolicy)'

// ---------------------------------------------------------------------------------------------
// Builders

const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend'
const BATCH = 'spiffe://cluster.local/ns/batch/sa/worker'
const INSHOP = 'spiffe://cluster.local/ns/shop/sa/payments'
const OTHER_TD = 'spiffe://other.example/ns/web/sa/frontend'

type Spec = Record<string, unknown>

export function authzPolicy(name: string, spec: Spec, opts: { namespace?: string; annotations?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: opts.namespace ?? 'shop', ...(opts.annotations ? { annotations: opts.annotations } : {}) },
    spec,
  }
}

const allow = (name: string, rules: unknown[] | undefined, extra: Spec = {}, ns?: string) =>
  authzPolicy(name, { ...extra, action: 'ALLOW', ...(rules ? { rules } : {}) }, { namespace: ns })
const deny = (name: string, rules: unknown[] | undefined, extra: Spec = {}, ns?: string) =>
  authzPolicy(name, { ...extra, action: 'DENY', ...(rules ? { rules } : {}) }, { namespace: ns })
const from = (source: Spec) => ({ from: [{ source }] })
const to = (operation: Spec) => ({ to: [{ operation }] })
const when = (...conds: Spec[]) => ({ when: conds })

const allowPaths = (paths: string[]) => allow('allow-paths', [to({ paths })])
const denyAdmin = deny('deny-admin', [to({ paths: ['/admin', '/admin/*'] })])
const jwt = (principal: string, claims: Record<string, unknown> = {}) => ({ principal, claims })

// ---------------------------------------------------------------------------------------------
// The table

export const authzCases: AuthzCase[] = [
  // --- evaluation order and defaults ---
  { name: 'no policy applies: allowed by default', source: CONCEPTS, policies: [], request: { path: '/' }, expect: 'ALLOW', policy: null, rule: null, reason: 'allow: no ALLOW policy applies' },
  { name: 'ALLOW with spec: {} (allow-nothing) denies every request', source: T_HTTP, policies: [authzPolicy('allow-nothing', {})], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'DENY', policy: null, reason: 'no ALLOW policy matched (1 applied' },
  { name: 'ALLOW with rules: [{}] (allow-all) allows every request', source: REF, policies: [allow('allow-all', [{}])], request: { path: '/anything', method: 'DELETE' }, expect: 'ALLOW', policy: 'shop/allow-all', rule: 0, reason: 'allow by shop/allow-all rules[0]' },
  { name: 'DENY with rules: [{}] denies every request', source: REF, policies: [deny('deny-all', [{}])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'DENY', policy: 'shop/deny-all', rule: 0, reason: 'deny by shop/deny-all rules[0]' },
  { name: 'DENY without rules never matches', source: S_VALIDATION, policies: [deny('deny-nothing', undefined)], request: { path: '/' }, expect: 'ALLOW', policy: null },
  { name: 'DENY is evaluated before ALLOW: both match, DENY wins', source: CONCEPTS, policies: [allow('allow-all', [{}]), deny('deny-get', [to({ methods: ['GET'] })])], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-get', rule: 0 },
  { name: 'ALLOW matches and no DENY matches: allowed', source: CONCEPTS, policies: [allow('allow-all', [{}]), deny('deny-post', [to({ methods: ['POST'] })])], request: { path: '/' }, expect: 'ALLOW', policy: 'shop/allow-all', rule: 0 },
  { name: 'an ALLOW policy applies but none matches: denied by default', source: CONCEPTS, policies: [allow('allow-get', [to({ methods: ['GET'] })])], request: { path: '/', method: 'POST' }, expect: 'DENY', policy: null, rule: null, reason: 'deny: no ALLOW policy matched (1 applied: shop/allow-get)' },
  { name: 'several ALLOW policies: any one may allow', source: CONCEPTS, policies: [allow('a-get', [to({ methods: ['GET'] })]), allow('b-post', [to({ methods: ['POST'] })])], request: { path: '/', method: 'POST' }, expect: 'ALLOW', policy: 'shop/b-post', rule: 0 },
  { name: 'the deny-by-default reason counts the ALLOW policies tried', source: CONCEPTS, policies: [allow('a-get', [to({ methods: ['GET'] })]), allow('b-post', [to({ methods: ['POST'] })])], request: { path: '/', method: 'PUT' }, expect: 'DENY', policy: null, reason: 'no ALLOW policy matched (2 applied: shop/a-get, shop/b-post)' },
  { name: 'a DENY policy alone does not turn on deny-by-default', source: CONCEPTS, policies: [deny('deny-post', [to({ methods: ['POST'] })])], request: { path: '/' }, expect: 'ALLOW', policy: null },
  { name: 'AUDIT only records: the request is still allowed', source: T_AUDIT, policies: [authzPolicy('audit-all', { action: 'AUDIT', rules: [{}] })], request: { path: '/' }, expect: 'ALLOW', policy: null, audit: 'shop/audit-all' },
  { name: 'AUDIT does not allow: an ALLOW policy that does not match still denies', source: T_AUDIT, policies: [authzPolicy('audit-all', { action: 'AUDIT', rules: [{}] }), authzPolicy('allow-nothing', {})], request: { path: '/' }, expect: 'DENY', policy: null, audit: 'shop/audit-all' },
  { name: 'AUDIT that does not match records nothing', source: T_AUDIT, policies: [authzPolicy('audit-post', { action: 'AUDIT', rules: [to({ methods: ['POST'] })] })], request: { path: '/' }, expect: 'ALLOW', audit: null },
  { name: 'dry-run DENY (remora.dev/dry-run) is evaluated but not enforced', source: T_DRY, policies: [authzPolicy('deny-all', { action: 'DENY', rules: [{}] }, { annotations: { 'remora.dev/dry-run': 'true' } })], request: { path: '/' }, expect: 'ALLOW', policy: null, dryRun: [{ policy: 'shop/deny-all', matched: true }] },
  { name: 'dry-run DENY (istio.io/dry-run) is evaluated but not enforced', source: T_DRY, policies: [authzPolicy('deny-all', { action: 'DENY', rules: [{}] }, { annotations: { 'istio.io/dry-run': 'true' } })], request: { path: '/' }, expect: 'ALLOW', dryRun: [{ policy: 'shop/deny-all', matched: true }] },
  { name: 'dry-run ALLOW with spec: {} does not turn on deny-by-default', source: T_DRY, policies: [authzPolicy('allow-nothing', {}, { annotations: { 'istio.io/dry-run': 'true' } })], request: { path: '/' }, expect: 'ALLOW', policy: null, dryRun: [{ policy: 'shop/allow-nothing', matched: false }] },
  { name: 'dry-run annotation "false" is enforced', source: T_DRY, policies: [authzPolicy('deny-all', { action: 'DENY', rules: [{}] }, { annotations: { 'istio.io/dry-run': 'false' } })], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-all' },
  { name: 'dry-run result reports a non-matching policy too', source: T_DRY, policies: [authzPolicy('deny-post', { action: 'DENY', rules: [to({ methods: ['POST'] })] }, { annotations: { 'istio.io/dry-run': 'true' } }), deny('deny-get', [to({ methods: ['GET'] })])], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-get', dryRun: [{ policy: 'shop/deny-post', matched: false }] },

  // --- scope: selector, namespace, root namespace ---
  { name: 'a policy in another namespace does not apply', source: REF, policies: [authzPolicy('allow-nothing', {}, { namespace: 'billing' })], request: { path: '/' }, expect: 'ALLOW', policy: null },
  { name: 'a policy in the root namespace applies mesh-wide', source: REF, policies: [authzPolicy('allow-nothing', {}, { namespace: 'remora-system' })], request: { path: '/' }, expect: 'DENY', policy: null, reason: 'remora-system/allow-nothing' },
  { name: 'a root-namespace policy with a selector applies to matching workloads of every namespace', source: S_SELECT, policies: [authzPolicy('deny-orders', { selector: { matchLabels: { app: 'orders' } }, action: 'DENY', rules: [{}] }, { namespace: 'remora-system' })], request: { path: '/' }, expect: 'DENY', policy: 'remora-system/deny-orders' },
  { name: 'a root-namespace policy whose selector does not match does not apply', source: S_SELECT, policies: [authzPolicy('deny-payments', { selector: { matchLabels: { app: 'payments' } }, action: 'DENY', rules: [{}] }, { namespace: 'remora-system' })], request: { path: '/' }, expect: 'ALLOW' },
  { name: 'istio-system is not the root namespace (remora-system is, by default)', source: REF, policies: [authzPolicy('allow-nothing', {}, { namespace: 'istio-system' })], request: { path: '/' }, expect: 'ALLOW' },
  { name: 'selector labels are a subset of the workload labels: applies', source: REF, workload: { namespace: 'shop', labels: { app: 'orders', version: 'v1' } }, policies: [deny('deny-orders', [{}], { selector: { matchLabels: { app: 'orders' } } })], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-orders' },
  { name: 'selector with a different label value does not apply', source: REF, policies: [deny('deny-v2', [{}], { selector: { matchLabels: { app: 'orders', version: 'v2' } } })], request: { path: '/' }, expect: 'ALLOW' },
  { name: 'selector with a label the workload lacks does not apply', source: REF, policies: [deny('deny-canary', [{}], { selector: { matchLabels: { track: 'canary' } } })], request: { path: '/' }, expect: 'ALLOW' },
  { name: 'no selector: applies to every workload in the namespace', source: REF, workload: { namespace: 'shop', labels: { app: 'payments' } }, policies: [deny('deny-all', [{}])], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-all' },
  { name: 'root and namespace ALLOW policies: either may allow', source: REF, policies: [allow('allow-health', [to({ paths: ['/healthz'] })], {}, 'remora-system'), allow('allow-frontend', [from({ principals: ['cluster.local/ns/web/sa/frontend'] })])], request: { path: '/healthz' }, expect: 'ALLOW', policy: 'remora-system/allow-health' },

  // --- principals ---
  { name: 'principals: Istio form without scheme matches the peer SPIFFE ID', source: REF, policies: [allow('allow-frontend', [from({ principals: ['cluster.local/ns/web/sa/frontend'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW', policy: 'shop/allow-frontend', rule: 0 },
  { name: 'principals: a full spiffe:// ID is accepted and normalized', source: REF, policies: [allow('allow-frontend', [from({ principals: [FRONTEND] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW', policy: 'shop/allow-frontend' },
  { name: 'principals: another service account is denied', source: REF, policies: [allow('allow-frontend', [from({ principals: ['cluster.local/ns/web/sa/frontend'] })])], request: { path: '/', sourcePrincipal: BATCH }, expect: 'DENY', policy: null },
  { name: 'principals: a plaintext caller has no principal and is denied', source: REF, policies: [allow('allow-frontend', [from({ principals: ['cluster.local/ns/web/sa/frontend'] })])], request: { path: '/' }, expect: 'DENY', policy: null },
  { name: 'principals: prefix match', source: S_STRING, policies: [allow('allow-web', [from({ principals: ['cluster.local/ns/web/*'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW', policy: 'shop/allow-web' },
  { name: 'principals: suffix match (any trust domain)', source: S_STRING, policies: [allow('allow-sa', [from({ principals: ['*/sa/frontend'] })])], request: { path: '/', sourcePrincipal: OTHER_TD }, expect: 'ALLOW', policy: 'shop/allow-sa' },
  { name: 'principals: "*" matches any mTLS peer', source: REF, policies: [allow('allow-mtls', [from({ principals: ['*'] })])], request: { path: '/', sourcePrincipal: BATCH }, expect: 'ALLOW', policy: 'shop/allow-mtls' },
  { name: 'principals: "*" does not match a plaintext caller', source: REF, policies: [allow('allow-mtls', [from({ principals: ['*'] })])], request: { path: '/' }, expect: 'DENY', policy: null },
  { name: 'principals: the trust domain is part of the match', source: REF, policies: [allow('allow-frontend', [from({ principals: ['cluster.local/ns/web/sa/frontend'] })])], request: { path: '/', sourcePrincipal: OTHER_TD }, expect: 'DENY', policy: null },
  { name: 'principals: values OR (second value matches)', source: REF, policies: [allow('allow-two', [from({ principals: ['cluster.local/ns/web/sa/frontend', 'cluster.local/ns/batch/sa/worker'] })])], request: { path: '/', sourcePrincipal: BATCH }, expect: 'ALLOW', policy: 'shop/allow-two' },
  { name: 'notPrincipals in ALLOW: a caller not listed is allowed', source: REF, policies: [allow('allow-not-batch', [from({ notPrincipals: ['cluster.local/ns/batch/sa/worker'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW', policy: 'shop/allow-not-batch' },
  { name: 'notPrincipals in ALLOW: the listed caller is denied', source: REF, policies: [allow('allow-not-batch', [from({ notPrincipals: ['cluster.local/ns/batch/sa/worker'] })])], request: { path: '/', sourcePrincipal: BATCH }, expect: 'DENY', policy: null },
  { name: 'notPrincipals ["*"] in DENY rejects plaintext callers', source: T_DENY, policies: [deny('require-mtls', [from({ notPrincipals: ['*'] })])], request: { path: '/' }, expect: 'DENY', policy: 'shop/require-mtls' },
  { name: 'notPrincipals ["*"] in DENY lets mTLS callers through', source: T_DENY, policies: [deny('require-mtls', [from({ notPrincipals: ['*'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW', policy: null },

  // --- namespaces ---
  { name: 'namespaces: the caller namespace (from its principal) matches', source: T_HTTP, policies: [allow('allow-web', [from({ namespaces: ['web'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW', policy: 'shop/allow-web' },
  { name: 'namespaces: another namespace is denied', source: T_HTTP, policies: [allow('allow-web', [from({ namespaces: ['web'] })])], request: { path: '/', sourcePrincipal: BATCH }, expect: 'DENY', policy: null },
  { name: 'namespaces: prefix match', source: S_GEN, policies: [allow('allow-we', [from({ namespaces: ['we*'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW' },
  { name: 'namespaces: suffix match', source: S_GEN, policies: [allow('allow-eb', [from({ namespaces: ['*eb'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW' },
  { name: 'namespaces: "*" does not match a plaintext caller (no principal, no namespace)', source: S_GEN, policies: [allow('allow-any-ns', [from({ namespaces: ['*'] })])], request: { path: '/' }, expect: 'DENY', policy: null },
  { name: 'notNamespaces in DENY: a caller from outside is denied', source: T_DENY, policies: [deny('deny-outside', [from({ notNamespaces: ['shop'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'DENY', policy: 'shop/deny-outside' },
  { name: 'notNamespaces in DENY: a caller from inside passes', source: T_DENY, policies: [deny('deny-outside', [from({ notNamespaces: ['shop'] })])], request: { path: '/', sourcePrincipal: INSHOP }, expect: 'ALLOW' },
  { name: 'notNamespaces in DENY: a plaintext caller is denied (no namespace is not "shop")', source: S_MODEL, policies: [deny('deny-outside', [from({ notNamespaces: ['shop'] })])], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-outside' },

  // --- request principals and JWT conditions (request.auth.* filled by RequestAuthentication) ---
  { name: 'requestPrincipals ["*"]: no JWT, denied, and the reason says why', source: T_JWT, policies: [allow('require-jwt', [from({ requestPrincipals: ['*'] })])], request: { path: '/' }, expect: 'DENY', policy: null, reason: 'no request principal: JWT not validated' },
  { name: 'requestPrincipals ["*"]: a validated JWT is allowed', source: T_JWT, policies: [allow('require-jwt', [from({ requestPrincipals: ['*'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice') }, expect: 'ALLOW', policy: 'shop/require-jwt' },
  { name: 'requestPrincipals: exact iss/sub', source: T_JWT, policies: [allow('allow-alice', [from({ requestPrincipals: ['https://issuer.example.com/alice'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice') }, expect: 'ALLOW' },
  { name: 'requestPrincipals: another subject is denied', source: T_JWT, policies: [allow('allow-alice', [from({ requestPrincipals: ['https://issuer.example.com/alice'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/bob') }, expect: 'DENY' },
  { name: 'requestPrincipals: "iss/*" matches any subject of the issuer', source: S_GEN, policies: [allow('allow-issuer', [from({ requestPrincipals: ['https://issuer.example.com/*'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/bob') }, expect: 'ALLOW' },
  { name: 'requestPrincipals: "*/sub" matches the subject from any issuer', source: S_GEN, policies: [allow('allow-alice-any', [from({ requestPrincipals: ['*/alice'] })])], request: { path: '/', jwt: jwt('https://other.example.org/alice') }, expect: 'ALLOW' },
  { name: 'notRequestPrincipals ["*"] in DENY: a request without a JWT is denied', source: T_JWT, policies: [deny('require-jwt', [from({ notRequestPrincipals: ['*'] })])], request: { path: '/' }, expect: 'DENY', policy: 'shop/require-jwt', reason: 'no request principal: JWT not validated' },
  { name: 'notRequestPrincipals ["*"] in DENY: a request with a JWT passes', source: T_JWT, policies: [deny('require-jwt', [from({ notRequestPrincipals: ['*'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice') }, expect: 'ALLOW' },
  { name: 'request.auth.claims[groups]: a list claim matches when one element matches', source: T_JWT, policies: [allow('allow-admins', [when({ key: 'request.auth.claims[groups]', values: ['admin'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { groups: ['dev', 'admin'] }) }, expect: 'ALLOW' },
  { name: 'request.auth.claims[groups]: no matching element is denied', source: T_JWT, policies: [allow('allow-admins', [when({ key: 'request.auth.claims[groups]', values: ['admin'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { groups: ['dev'] }) }, expect: 'DENY' },
  { name: 'request.auth.claims[groups]: no JWT at all is denied with the JWT reason', source: T_JWT, policies: [allow('allow-admins', [when({ key: 'request.auth.claims[groups]', values: ['admin'] })])], request: { path: '/' }, expect: 'DENY', reason: 'JWT not validated' },
  { name: 'request.auth.claims[iss]: a string claim', source: COND, policies: [allow('allow-iss', [when({ key: 'request.auth.claims[iss]', values: ['https://issuer.example.com'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice') }, expect: 'ALLOW' },
  { name: 'request.auth.claims[a][b]: a nested claim', source: COND, policies: [allow('allow-role', [when({ key: 'request.auth.claims[realm_access][roles]', values: ['orders-admin'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { realm_access: { roles: ['orders-admin'] } }) }, expect: 'ALLOW' },
  { name: 'request.auth.claims: a non-string claim never matches a string value', source: S_GEN, policies: [allow('allow-level', [when({ key: 'request.auth.claims[level]', values: ['3'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { level: 3 }) }, expect: 'DENY' },
  { name: 'request.auth.claims: prefix match on a claim', source: S_GEN, policies: [allow('allow-email', [when({ key: 'request.auth.claims[email]', values: ['*@example.com'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { email: 'alice@example.com' }) }, expect: 'ALLOW' },
  { name: 'request.auth.audiences: one of the token audiences matches', source: COND, policies: [allow('allow-aud', [when({ key: 'request.auth.audiences', values: ['orders'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { aud: ['web', 'orders'] }) }, expect: 'ALLOW' },
  { name: 'request.auth.presenter: the azp claim', source: COND, policies: [allow('allow-azp', [when({ key: 'request.auth.presenter', values: ['web-client'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { azp: 'web-client' }) }, expect: 'ALLOW' },
  { name: 'request.auth.principal as a condition', source: COND, policies: [allow('allow-rp', [when({ key: 'request.auth.principal', values: ['https://issuer.example.com/alice'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice') }, expect: 'ALLOW' },
  { name: 'claims notValues in DENY: no JWT counts as "not admin" and is denied', source: BEST, policies: [deny('deny-non-admin', [{ ...to({ paths: ['/admin*'] }), ...when({ key: 'request.auth.claims[groups]', notValues: ['admin'] }) }])], request: { path: '/admin/users' }, expect: 'DENY', policy: 'shop/deny-non-admin', reason: 'JWT not validated' },
  { name: 'claims notValues in DENY: an admin token passes', source: BEST, policies: [deny('deny-non-admin', [{ ...to({ paths: ['/admin*'] }), ...when({ key: 'request.auth.claims[groups]', notValues: ['admin'] }) }])], request: { path: '/admin/users', jwt: jwt('https://issuer.example.com/alice', { groups: ['admin'] }) }, expect: 'ALLOW' },

  // --- operation: methods ---
  { name: 'methods: exact', source: T_HTTP, policies: [allow('allow-get', [to({ methods: ['GET'] })])], request: { path: '/', method: 'GET' }, expect: 'ALLOW' },
  { name: 'methods: another method is denied', source: T_HTTP, policies: [allow('allow-get', [to({ methods: ['GET'] })])], request: { path: '/', method: 'POST' }, expect: 'DENY' },
  { name: 'methods: matching is case-sensitive', source: S_HEADER, policies: [allow('allow-get', [to({ methods: ['get'] })])], request: { path: '/', method: 'GET' }, expect: 'DENY' },
  { name: 'methods: prefix match', source: S_HEADER, policies: [allow('allow-p', [to({ methods: ['P*'] })])], request: { path: '/', method: 'PUT' }, expect: 'ALLOW' },
  { name: 'notMethods in ALLOW: another method is allowed', source: REF, policies: [allow('allow-not-delete', [to({ notMethods: ['DELETE'] })])], request: { path: '/', method: 'GET' }, expect: 'ALLOW' },
  { name: 'notMethods in ALLOW: the listed method is denied', source: REF, policies: [allow('allow-not-delete', [to({ notMethods: ['DELETE'] })])], request: { path: '/', method: 'DELETE' }, expect: 'DENY' },

  // --- operation: hosts ---
  { name: 'hosts: exact', source: REF, policies: [allow('allow-host', [to({ hosts: ['orders.shop'] })])], request: { path: '/', host: 'orders.shop' }, expect: 'ALLOW' },
  { name: 'hosts: the match is case-insensitive', source: GHSA_HOST, policies: [allow('allow-host', [to({ hosts: ['orders.shop'] })])], request: { path: '/', host: 'ORDERS.Shop' }, expect: 'ALLOW' },
  { name: 'hosts: a case variant cannot bypass a DENY', source: GHSA_HOST, policies: [deny('deny-host', [to({ hosts: ['orders.shop'] })])], request: { path: '/', host: 'Orders.SHOP' }, expect: 'DENY', policy: 'shop/deny-host' },
  { name: 'hosts: an exact host does not match the authority with a port', source: BEST, policies: [allow('allow-host', [to({ hosts: ['orders.shop'] })])], request: { path: '/', host: 'orders.shop:8080' }, expect: 'DENY' },
  { name: 'hosts: "host:*" matches the authority with a port', source: BEST, policies: [allow('allow-host', [to({ hosts: ['orders.shop:*'] })])], request: { path: '/', host: 'orders.shop:8080' }, expect: 'ALLOW' },
  { name: 'hosts: ["h", "h:*"] matches with and without a port', source: BEST, policies: [allow('allow-host', [to({ hosts: ['orders.shop', 'orders.shop:*'] })])], request: { path: '/', host: 'orders.shop' }, expect: 'ALLOW' },
  { name: 'hosts: suffix match', source: S_HEADER, policies: [allow('allow-shop', [to({ hosts: ['*.shop'] })])], request: { path: '/', host: 'orders.shop' }, expect: 'ALLOW' },
  { name: 'hosts: a suffix does not match when a port follows', source: S_HEADER, policies: [allow('allow-shop', [to({ hosts: ['*.shop'] })])], request: { path: '/', host: 'orders.shop:8080' }, expect: 'DENY' },
  { name: 'notHosts in DENY: an unexpected host is denied', source: REF, policies: [deny('deny-other-hosts', [to({ notHosts: ['orders.shop', 'orders.shop:*'] })])], request: { path: '/', host: 'evil.example.com' }, expect: 'DENY', policy: 'shop/deny-other-hosts' },
  { name: 'notHosts in DENY: the expected host passes', source: REF, policies: [deny('deny-other-hosts', [to({ notHosts: ['orders.shop', 'orders.shop:*'] })])], request: { path: '/', host: 'orders.shop:8080' }, expect: 'ALLOW' },

  // --- operation: ports ---
  { name: 'ports: the destination port matches', source: REF, policies: [allow('allow-8080', [to({ ports: ['8080'] })])], request: { path: '/', port: 8080 }, expect: 'ALLOW' },
  { name: 'ports: another destination port is denied', source: REF, policies: [allow('allow-8080', [to({ ports: ['8080'] })])], request: { path: '/', port: 9090 }, expect: 'DENY' },
  { name: 'notPorts in ALLOW', source: REF, policies: [allow('allow-not-9090', [to({ notPorts: ['9090'] })])], request: { path: '/', port: 8080 }, expect: 'ALLOW' },

  // --- operation: paths (exact, prefix, suffix, presence, templates) ---
  { name: 'paths: exact', source: REF, policies: [allowPaths(['/api/orders'])], request: { path: '/api/orders' }, expect: 'ALLOW', policy: 'shop/allow-paths' },
  { name: 'paths: exact does not match a trailing slash', source: BEST, policies: [allowPaths(['/api/orders'])], request: { path: '/api/orders/' }, expect: 'DENY' },
  { name: 'paths: prefix', source: REF, policies: [allowPaths(['/api/*'])], request: { path: '/api/orders/42' }, expect: 'ALLOW' },
  { name: 'paths: suffix', source: REF, policies: [allowPaths(['*.png'])], request: { path: '/img/logo.png' }, expect: 'ALLOW' },
  { name: 'paths: "*" matches any path', source: REF, policies: [allowPaths(['*'])], request: { path: '/whatever/here' }, expect: 'ALLOW' },
  { name: 'paths: matching is case-sensitive', source: BEST, policies: [allowPaths(['/api/orders'])], request: { path: '/API/orders' }, expect: 'DENY' },
  { name: 'paths: {*} matches exactly one segment', source: S_TEMPLATE, policies: [allowPaths(['/api/{*}/items'])], request: { path: '/api/v1/items' }, expect: 'ALLOW' },
  { name: 'paths: {*} does not match two segments', source: S_TEMPLATE, policies: [allowPaths(['/api/{*}/items'])], request: { path: '/api/v1/x/items' }, expect: 'DENY' },
  { name: 'paths: {*} does not match an empty segment', source: S_ENVOY_TPL, pathNormalization: 'BASE', policies: [allowPaths(['/api/{*}/items'])], request: { path: '/api//items' }, expect: 'DENY' },
  { name: 'paths: {**} matches several segments', source: S_TEMPLATE, policies: [allowPaths(['/api/{**}'])], request: { path: '/api/a/b/c' }, expect: 'ALLOW' },
  { name: 'paths: {**} matches zero segments after the slash', source: S_ENVOY_TPL, policies: [allowPaths(['/api/{**}'])], request: { path: '/api/' }, expect: 'ALLOW' },
  { name: 'paths: "/api/{**}" does not match "/api" (the slash is literal)', source: S_ENVOY_TPL, policies: [allowPaths(['/api/{**}'])], request: { path: '/api' }, expect: 'DENY' },
  { name: 'paths: a literal may follow {**}', source: S_TEMPLATE, policies: [allowPaths(['/{**}/status'])], request: { path: '/a/b/status' }, expect: 'ALLOW' },
  { name: 'paths: {*} and {**} combined', source: S_TEMPLATE, policies: [allowPaths(['/{*}/foo/{**}/bar'])], request: { path: '/x/foo/a/b/bar' }, expect: 'ALLOW' },
  { name: 'paths: a template does not match the query string', source: S_ENVOY_TPL, policies: [allowPaths(['/api/{*}'])], request: { path: '/api/v1?x=/y' }, expect: 'ALLOW' },
  { name: 'notPaths in ALLOW: another path is allowed', source: REF, policies: [allow('allow-not-admin', [to({ notPaths: ['/admin*'] })])], request: { path: '/api' }, expect: 'ALLOW' },
  { name: 'notPaths in ALLOW: the excluded path is denied', source: REF, policies: [allow('allow-not-admin', [to({ notPaths: ['/admin*'] })])], request: { path: '/admin/users' }, expect: 'DENY' },
  { name: 'notPaths with a template in DENY', source: S_BUILDER, policies: [deny('deny-not-api', [to({ notPaths: ['/api/{**}'] })])], request: { path: '/internal/x' }, expect: 'DENY', policy: 'shop/deny-not-api' },

  // --- path confusion: decided on the normalized path ---
  { name: 'path confusion: /public/../admin is /admin', source: BEST, policies: [denyAdmin], request: { path: '/public/../admin' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: //admin is /admin under MERGE_SLASHES (remora default)', source: BEST, policies: [denyAdmin], request: { path: '//admin' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: //admin bypasses a DENY under BASE (Istio default)', source: BEST, pathNormalization: 'BASE', policies: [denyAdmin], request: { path: '//admin' }, expect: 'ALLOW', policy: null },
  { name: 'path confusion: /%2e%2e/admin is /admin', source: S_NORM, policies: [denyAdmin], request: { path: '/%2e%2e/admin' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: /public/%2E%2E/admin is /admin', source: S_NORM, policies: [denyAdmin], request: { path: '/public/%2E%2E/admin' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: /%61dmin (encoded unreserved) is /admin', source: S_NORM, policies: [denyAdmin], request: { path: '/%61dmin' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: /admin/./users is /admin/users', source: S_NORM, policies: [denyAdmin], request: { path: '/admin/./users' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: a backslash is a slash', source: BEST, policies: [denyAdmin], request: { path: '/public\\..\\admin' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: the query is not part of the path', source: BEST, policies: [denyAdmin], request: { path: '/admin?x=1' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: a query that looks like a path does not match', source: BEST, policies: [denyAdmin], request: { path: '/public?/admin' }, expect: 'ALLOW', policy: null },
  { name: 'path confusion: the fragment is not part of the path', source: BEST, policies: [denyAdmin], request: { path: '/admin#top' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: /ADMIN is not /admin (paths are case-sensitive)', source: BEST, policies: [denyAdmin], request: { path: '/ADMIN' }, expect: 'ALLOW', policy: null },
  { name: 'path confusion: %2F is rejected with 400 under MERGE_SLASHES', source: BEST, policies: [denyAdmin], request: { path: '/admin%2Fusers' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %5C is rejected with 400 under MERGE_SLASHES', source: BEST, policies: [allow('allow-all', [{}])], request: { path: '/public%5C..%5Cadmin' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %2F is decoded under DECODE_AND_MERGE_SLASHES', source: BEST, pathNormalization: 'DECODE_AND_MERGE_SLASHES', policies: [denyAdmin], request: { path: '/admin%2Fusers' }, expect: 'DENY', policy: 'shop/deny-admin' },
  { name: 'path confusion: %2F is kept under BASE and does not match', source: BEST, pathNormalization: 'BASE', policies: [denyAdmin], request: { path: '/admin%2Fusers' }, expect: 'ALLOW', policy: null },
  // issue 13: an escaped control character is refused before authorization, in every mode (Envoy refuses %00)
  { name: 'path confusion: %00 is rejected with 400 under MERGE_SLASHES', source: BEST, policies: [denyAdmin], request: { path: '/admin%00.png' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %00 is rejected with 400 under BASE', source: BEST, pathNormalization: 'BASE', policies: [denyAdmin], request: { path: '/admin%00.png' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %00 is rejected with 400 under DECODE_AND_MERGE_SLASHES', source: BEST, pathNormalization: 'DECODE_AND_MERGE_SLASHES', policies: [denyAdmin], request: { path: '/admin%00.png' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %0d%0a (header injection) is rejected with 400 under MERGE_SLASHES', source: BEST, policies: [denyAdmin], request: { path: '/admin%0d%0aSet-Cookie:%20x=1' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %0D%0A is rejected with 400 under BASE', source: BEST, pathNormalization: 'BASE', policies: [denyAdmin], request: { path: '/admin%0D%0ASet-Cookie:%20x=1' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %7F is rejected with 400 under DECODE_AND_MERGE_SLASHES', source: BEST, pathNormalization: 'DECODE_AND_MERGE_SLASHES', policies: [denyAdmin], request: { path: '/admin%7F' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: overlong %C0%80 (NUL) is rejected with 400', source: BEST, policies: [denyAdmin], request: { path: '/admin%C0%80.png' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: overlong %c0%ae%c0%ae (..) is rejected with 400', source: BEST, policies: [allow('allow-all', [{}])], request: { path: '/public/%c0%ae%c0%ae/admin' }, expect: 'DENY', status: 400, policy: null },
  { name: 'path confusion: %2500 is not decoded twice and does not match /admin', source: BEST, policies: [denyAdmin], request: { path: '/admin%2500.png' }, expect: 'ALLOW', policy: null },
  { name: 'ALLOW-with-positive-matching: /public/../admin is not /public', source: BEST, policies: [allowPaths(['/public', '/public/*'])], request: { path: '/public/../admin' }, expect: 'DENY', policy: null },
  { name: 'DENY-with-negative-matching: notPaths ["/public"] denies /public/../admin', source: BEST, policies: [deny('deny-not-public', [to({ notPaths: ['/public'] })])], request: { path: '/public/../admin' }, expect: 'DENY', policy: 'shop/deny-not-public' },

  // --- source addresses ---
  { name: 'ipBlocks: a CIDR containing the peer address', source: T_INGRESS, policies: [allow('allow-net', [from({ ipBlocks: ['10.1.0.0/16'] })])], request: { path: '/', sourceIp: '10.1.2.3' }, expect: 'ALLOW' },
  { name: 'ipBlocks: an address outside the CIDR is denied', source: T_INGRESS, policies: [allow('allow-net', [from({ ipBlocks: ['10.1.0.0/16'] })])], request: { path: '/', sourceIp: '10.2.0.1' }, expect: 'DENY' },
  { name: 'ipBlocks: a single address', source: T_INGRESS, policies: [allow('allow-ip', [from({ ipBlocks: ['10.1.2.3'] })])], request: { path: '/', sourceIp: '10.1.2.3' }, expect: 'ALLOW' },
  { name: 'ipBlocks: an IPv6 CIDR', source: S_GEN, policies: [allow('allow-v6', [from({ ipBlocks: ['2001:db8::/32'] })])], request: { path: '/', sourceIp: '2001:db8:1::7' }, expect: 'ALLOW' },
  { name: 'ipBlocks: an IPv6 CIDR does not match an IPv4 peer', source: S_GEN, policies: [allow('allow-v6', [from({ ipBlocks: ['2001:db8::/32'] })])], request: { path: '/', sourceIp: '10.1.2.3' }, expect: 'DENY' },
  { name: 'ipBlocks: an IPv4-mapped IPv6 peer address is matched as IPv4', source: S_GEN, policies: [allow('allow-net', [from({ ipBlocks: ['10.1.0.0/16'] })])], request: { path: '/', sourceIp: '::ffff:10.1.2.3' }, expect: 'ALLOW' },
  { name: 'notIpBlocks in DENY: a peer outside the network is denied', source: T_INGRESS, policies: [deny('deny-outside', [from({ notIpBlocks: ['10.0.0.0/8'] })])], request: { path: '/', sourceIp: '192.168.1.1' }, expect: 'DENY', policy: 'shop/deny-outside' },
  { name: 'notIpBlocks in DENY: a peer inside passes', source: T_INGRESS, policies: [deny('deny-outside', [from({ notIpBlocks: ['10.0.0.0/8'] })])], request: { path: '/', sourceIp: '10.9.9.9' }, expect: 'ALLOW' },
  { name: 'remoteIpBlocks: the X-Forwarded-For client address', source: T_INGRESS, policies: [allow('allow-client', [from({ remoteIpBlocks: ['203.0.113.0/24'] })])], request: { path: '/', sourceIp: '10.1.2.3', remoteIp: '203.0.113.9' }, expect: 'ALLOW' },
  { name: 'remoteIpBlocks: without a forwarded address the peer address is used', source: T_INGRESS, policies: [allow('allow-client', [from({ remoteIpBlocks: ['203.0.113.0/24'] })])], request: { path: '/', sourceIp: '10.1.2.3' }, expect: 'DENY' },
  { name: 'ipBlocks look at the peer, not at X-Forwarded-For', source: T_INGRESS, policies: [allow('allow-client', [from({ ipBlocks: ['203.0.113.0/24'] })])], request: { path: '/', sourceIp: '10.1.2.3', remoteIp: '203.0.113.9' }, expect: 'DENY' },
  { name: 'notRemoteIpBlocks in DENY', source: S_BUILDER, policies: [deny('deny-bad-clients', [from({ notRemoteIpBlocks: ['203.0.113.0/24'] })])], request: { path: '/', remoteIp: '198.51.100.1' }, expect: 'DENY', policy: 'shop/deny-bad-clients' },

  // --- conditions (when) ---
  { name: 'when request.headers[]: the header value matches', source: COND, policies: [allow('allow-alice', [when({ key: 'request.headers[x-user]', values: ['alice'] })])], request: { path: '/', headers: { 'x-user': 'alice' } }, expect: 'ALLOW' },
  { name: 'when request.headers[]: an absent header does not match', source: COND, policies: [allow('allow-alice', [when({ key: 'request.headers[x-user]', values: ['alice'] })])], request: { path: '/' }, expect: 'DENY' },
  { name: 'when request.headers[]: the header name is case-insensitive', source: S_HEADER, policies: [allow('allow-alice', [when({ key: 'request.headers[X-User]', values: ['alice'] })])], request: { path: '/', headers: { 'x-user': 'alice' } }, expect: 'ALLOW' },
  { name: 'when request.headers[]: prefix match on the value', source: S_HEADER, policies: [allow('allow-al', [when({ key: 'request.headers[x-user]', values: ['al*'] })])], request: { path: '/', headers: { 'x-user': 'alice' } }, expect: 'ALLOW' },
  { name: 'when request.headers[]: "*" is presence (an empty value counts)', source: S_HEADER, policies: [allow('allow-present', [when({ key: 'request.headers[x-trace]', values: ['*'] })])], request: { path: '/', headers: { 'x-trace': '' } }, expect: 'ALLOW' },
  { name: 'when request.headers[]: notValues on an absent header matches (DENY denies)', source: S_MODEL, policies: [deny('deny-non-internal', [when({ key: 'request.headers[x-internal]', notValues: ['yes'] })])], request: { path: '/' }, expect: 'DENY', policy: 'shop/deny-non-internal' },
  { name: 'when request.headers[]: a repeated header is matched as its values joined with ","', source: S_HEADER, policies: [allow('allow-joined', [when({ key: 'request.headers[x-role]', values: ['a,b'] })])], request: { path: '/', headers: { 'x-role': ['a', 'b'] } }, expect: 'ALLOW' },
  // issue 13: any copy of a repeated header, and any element of a comma-separated value, can trigger a DENY
  { name: 'when request.headers[]: DENY matches the second of two copies (alice, mallory)', source: S_HEADER, policies: [deny('deny-mallory', [when({ key: 'request.headers[x-user]', values: ['mallory'] })])], request: { path: '/', headers: { 'x-user': ['alice', 'mallory'] } }, expect: 'DENY', policy: 'shop/deny-mallory' },
  { name: 'when request.headers[]: DENY matches the first of two copies (mallory, alice)', source: S_HEADER, policies: [deny('deny-mallory', [when({ key: 'request.headers[x-user]', values: ['mallory'] })])], request: { path: '/', headers: { 'x-user': ['mallory', 'alice'] } }, expect: 'DENY', policy: 'shop/deny-mallory' },
  { name: 'when request.headers[]: DENY matches one element of a single "alice, mallory" line', source: S_HEADER, policies: [deny('deny-mallory', [when({ key: 'request.headers[x-user]', values: ['mallory'] })])], request: { path: '/', headers: { 'x-user': 'alice, mallory' } }, expect: 'DENY', policy: 'shop/deny-mallory' },
  { name: 'when request.headers[]: DENY prefix matches any copy', source: S_HEADER, policies: [deny('deny-red', [when({ key: 'request.headers[x-team]', values: ['red*'] })])], request: { path: '/', headers: { 'x-team': ['blue', 'red-1'] } }, expect: 'DENY', policy: 'shop/deny-red' },
  { name: 'when request.headers[]: two copies without the value pass the DENY (alice, bob)', source: S_HEADER, policies: [deny('deny-mallory', [when({ key: 'request.headers[x-user]', values: ['mallory'] })])], request: { path: '/', headers: { 'x-user': ['alice', 'bob'] } }, expect: 'ALLOW', policy: null },
  { name: 'when request.headers[]: an element is matched whole, never a substring (malloryx)', source: S_HEADER, policies: [deny('deny-mallory', [when({ key: 'request.headers[x-user]', values: ['mallory'] })])], request: { path: '/', headers: { 'x-user': 'alice, malloryx' } }, expect: 'ALLOW', policy: null },
  { name: 'request.auth.claims[scope]: a space-delimited scope matches one of its scopes (DENY)', source: T_JWT, policies: [deny('deny-admin-scope', [when({ key: 'request.auth.claims[scope]', values: ['admin'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { scope: 'read admin' }) }, expect: 'DENY', policy: 'shop/deny-admin-scope' },
  { name: 'request.auth.claims[scope]: a scope not in the list passes (read write)', source: T_JWT, policies: [deny('deny-admin-scope', [when({ key: 'request.auth.claims[scope]', values: ['admin'] })])], request: { path: '/', jwt: jwt('https://issuer.example.com/alice', { scope: 'read write' }) }, expect: 'ALLOW', policy: null },
  { name: 'when source.principal', source: COND, policies: [allow('allow-frontend', [when({ key: 'source.principal', values: ['cluster.local/ns/web/sa/frontend'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW' },
  { name: 'when source.namespace', source: COND, policies: [allow('allow-web', [when({ key: 'source.namespace', values: ['web'] })])], request: { path: '/', sourcePrincipal: FRONTEND }, expect: 'ALLOW' },
  { name: 'when source.ip', source: COND, policies: [allow('allow-net', [when({ key: 'source.ip', values: ['10.1.0.0/16'] })])], request: { path: '/', sourceIp: '10.1.2.3' }, expect: 'ALLOW' },
  { name: 'when remote.ip', source: COND, policies: [allow('allow-client', [when({ key: 'remote.ip', values: ['203.0.113.0/24'] })])], request: { path: '/', remoteIp: '203.0.113.9' }, expect: 'ALLOW' },
  { name: 'when destination.ip', source: COND, policies: [allow('allow-dst', [when({ key: 'destination.ip', values: ['10.9.0.0/16'] })])], request: { path: '/', destinationIp: '10.9.1.1' }, expect: 'ALLOW' },
  { name: 'when destination.ip: unknown destination address does not match', source: COND, policies: [allow('allow-dst', [when({ key: 'destination.ip', values: ['10.9.0.0/16'] })])], request: { path: '/' }, expect: 'DENY' },
  { name: 'when destination.port', source: COND, policies: [allow('allow-port', [when({ key: 'destination.port', values: ['8080'] })])], request: { path: '/', port: 8080 }, expect: 'ALLOW' },
  { name: 'when destination.port: another port', source: COND, policies: [allow('allow-port', [when({ key: 'destination.port', values: ['8080'] })])], request: { path: '/', port: 9090 }, expect: 'DENY' },
  { name: 'when connection.sni', source: COND, policies: [allow('allow-sni', [when({ key: 'connection.sni', values: ['orders.shop.svc'] })])], request: { path: '/', sni: 'orders.shop.svc' }, expect: 'ALLOW' },
  { name: 'when connection.sni: no SNI does not match', source: COND, policies: [allow('allow-sni', [when({ key: 'connection.sni', values: ['*'] })])], request: { path: '/' }, expect: 'DENY' },
  { name: 'when: several conditions are ANDed', source: REF, policies: [allow('allow-both', [when({ key: 'request.headers[x-user]', values: ['alice'] }, { key: 'destination.port', values: ['9090'] })])], request: { path: '/', headers: { 'x-user': 'alice' }, port: 8080 }, expect: 'DENY' },
  { name: 'when: values and notValues together', source: COND, policies: [allow('allow-ver', [when({ key: 'request.headers[x-version]', values: ['v*'], notValues: ['v1'] })])], request: { path: '/', headers: { 'x-version': 'v2' } }, expect: 'ALLOW' },
  { name: 'when: values and notValues together (excluded value)', source: COND, policies: [allow('allow-ver', [when({ key: 'request.headers[x-version]', values: ['v*'], notValues: ['v1'] })])], request: { path: '/', headers: { 'x-version': 'v1' } }, expect: 'DENY' },

  // --- composition: values OR, fields AND, rules OR, from/to entries OR ---
  { name: 'fields in a rule AND: principal matches, method does not', source: REF, policies: [allow('allow-frontend-get', [{ ...from({ principals: ['cluster.local/ns/web/sa/frontend'] }), ...to({ methods: ['GET'] }) }])], request: { path: '/', method: 'POST', sourcePrincipal: FRONTEND }, expect: 'DENY' },
  { name: 'fields in a rule AND: both match', source: REF, policies: [allow('allow-frontend-get', [{ ...from({ principals: ['cluster.local/ns/web/sa/frontend'] }), ...to({ methods: ['GET'] }) }])], request: { path: '/', method: 'GET', sourcePrincipal: FRONTEND }, expect: 'ALLOW', rule: 0 },
  { name: 'from entries OR: the second source matches', source: REF, policies: [allow('allow-either', [{ from: [{ source: { principals: ['cluster.local/ns/web/sa/frontend'] } }, { source: { namespaces: ['batch'] } }] }])], request: { path: '/', sourcePrincipal: BATCH }, expect: 'ALLOW' },
  { name: 'to entries OR: the second operation matches', source: REF, policies: [allow('allow-ops', [{ to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }, { operation: { methods: ['POST'], paths: ['/data'] } }] }])], request: { path: '/data', method: 'POST' }, expect: 'ALLOW' },
  { name: 'to entries OR: method and path must match in the same entry', source: REF, policies: [allow('allow-ops', [{ to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }, { operation: { methods: ['POST'], paths: ['/data'] } }] }])], request: { path: '/info', method: 'POST' }, expect: 'DENY' },
  { name: 'rules OR: the second rule matches and is reported', source: REF, policies: [allow('allow-rules', [to({ methods: ['GET'] }), to({ methods: ['POST'] })])], request: { path: '/', method: 'POST' }, expect: 'ALLOW', policy: 'shop/allow-rules', rule: 1 },
  { name: 'rules OR: the first matching rule is reported', source: REF, policies: [allow('allow-rules', [to({ paths: ['/api/*'] }), to({ methods: ['GET'] })])], request: { path: '/api/x', method: 'GET' }, expect: 'ALLOW', rule: 0 },
  { name: 'several DENY policies match: the first by namespace/name decides', source: S_AUTHZ_IT, policies: [deny('b-deny', [{}]), deny('a-deny', [{}])], request: { path: '/' }, expect: 'DENY', policy: 'shop/a-deny', rule: 0 },
  { name: 'DENY rule with the right principal but wrong path does not deny', source: T_DENY, policies: [deny('deny-batch-admin', [{ ...from({ principals: ['cluster.local/ns/batch/sa/worker'] }), ...to({ paths: ['/admin*'] }) }])], request: { path: '/orders', sourcePrincipal: BATCH }, expect: 'ALLOW' },
  { name: 'DENY rule with the right principal and path denies', source: T_DENY, policies: [deny('deny-batch-admin', [{ ...from({ principals: ['cluster.local/ns/batch/sa/worker'] }), ...to({ paths: ['/admin*'] }) }])], request: { path: '/admin/x', sourcePrincipal: BATCH }, expect: 'DENY', policy: 'shop/deny-batch-admin' },
  { name: 'the full example of the reference: service account + GET /info*', source: REF, policies: [allow('httpbin', [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }, { source: { namespaces: ['test'] } }], to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }, { operation: { methods: ['POST'], paths: ['/data'] } }] }])], request: { path: '/info/x', method: 'GET', sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/sleep' }, expect: 'ALLOW', policy: 'shop/httpbin' },
  { name: 'the full example of the reference: namespace test + POST /data', source: REF, policies: [allow('httpbin', [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }, { source: { namespaces: ['test'] } }], to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }, { operation: { methods: ['POST'], paths: ['/data'] } }] }])], request: { path: '/data', method: 'POST', sourcePrincipal: 'spiffe://cluster.local/ns/test/sa/any' }, expect: 'ALLOW' },
  { name: 'the full example of the reference: other namespace is denied', source: REF, policies: [allow('httpbin', [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }, { source: { namespaces: ['test'] } }], to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }, { operation: { methods: ['POST'], paths: ['/data'] } }] }])], request: { path: '/data', method: 'POST', sourcePrincipal: FRONTEND }, expect: 'DENY' },
]

/** Policies remora must reject (validation), each with the code and path it reports. */
export const invalidPolicyCases: InvalidPolicyCase[] = [
  { name: 'action CUSTOM is rejected as unsupported', source: REF, policy: authzPolicy('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }), code: 'REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', path: 'spec.action' },
  { name: '{**} must be the last operator', source: S_VALIDATION, policy: allowPaths(['/a/{**}/{*}']), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: 'spec.rules[0].to[0].operation.paths[0]' },
  { name: 'named variables are not supported', source: S_VALIDATION, policy: allowPaths(['/a/{id}']), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: 'spec.rules[0].to[0].operation.paths[0]' },
  { name: 'a template cannot be mixed with * matching', source: S_VALIDATION, policy: allowPaths(['/a/{*}/b*']), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: 'spec.rules[0].to[0].operation.paths[0]' },
  { name: 'a template operator must be a whole segment', source: S_VALIDATION, policy: allowPaths(['/a/{*}.png']), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: 'spec.rules[0].to[0].operation.paths[0]' },
  { name: 'templates are only allowed in paths', source: S_VALIDATION, policy: allow('t', [to({ hosts: ['{*}.shop'] })]), code: 'REMORA_ERR_POLICY_TEMPLATE_NOT_ALLOWED', path: 'spec.rules[0].to[0].operation.hosts[0]' },
  { name: 'a * in the middle of a path', source: S_VALIDATION, policy: allowPaths(['/api/*/users']), code: 'REMORA_ERR_POLICY_BAD_WILDCARD', path: 'spec.rules[0].to[0].operation.paths[0]' },
  { name: 'an unknown when key', source: S_VALIDATION, policy: allow('w', [when({ key: 'request.foo', values: ['x'] })]), code: 'REMORA_ERR_POLICY_WHEN_KEY_UNKNOWN', path: 'spec.rules[0].when[0].key' },
  { name: 'an experimental when key', source: S_VALIDATION, policy: allow('w', [when({ key: 'experimental.envoy.filters.a.b[c]', values: ['x'] })]), code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', path: 'spec.rules[0].when[0].key' },
  { name: 'an empty from.source', source: S_VALIDATION, policy: allow('e', [{ from: [{ source: {} }] }]), code: 'REMORA_ERR_POLICY_EMPTY_SOURCE', path: 'spec.rules[0].from[0].source' },
]

// ---------------------------------------------------------------------------------------------
// Turning a case into inputs

export interface HttpRequestSpec {
  method: string
  /** Raw request target, as sent on the wire. */
  path: string
  host: string
  headers: Record<string, string | string[]>
  /** SPIFFE ID the test client's certificate must carry; null = plaintext. */
  sourcePrincipal: string | null
  sourceIp: string
  port: number
}

/** What a test client sends to a running sidecar to reproduce this case. */
export function toHttpRequest(c: AuthzCase): HttpRequestSpec {
  const r = c.request
  return {
    method: r.method ?? 'GET',
    path: r.path,
    host: r.host ?? DEFAULT_HOST,
    headers: r.headers ?? {},
    sourcePrincipal: r.sourcePrincipal ?? null,
    sourceIp: r.sourceIp ?? DEFAULT_SOURCE_IP,
    port: r.port ?? DEFAULT_PORT,
  }
}

/**
 * Cases a real sidecar can reproduce with an mTLS (or plaintext) client from loopback: no JWT,
 * no forged addresses, no SNI/destination-address conditions, default workload and port, and a
 * request target an HTTP client can send as is.
 */
export function isReplayable(c: AuthzCase): boolean {
  const r = c.request
  const usesAddress = JSON.stringify(c.policies).match(/ipBlocks|IpBlocks|source\.ip|remote\.ip|destination\.ip|connection\.sni|request\.auth/)
  return (
    !r.jwt &&
    r.remoteIp === undefined &&
    r.sourceIp === undefined &&
    r.destinationIp === undefined &&
    r.sni === undefined &&
    r.port === undefined &&
    !c.workload &&
    !usesAddress &&
    !r.path.includes('#') &&
    !r.path.includes('\\')
  )
}

const NS_FROM_SPIFFE = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/

/** The RequestFacts evaluate() sees for this case, or the 400 the sidecar answers before authorization. */
export function toFacts(c: AuthzCase): { ok: true; facts: RequestFacts } | { ok: false; status: 400; reason: string } {
  const r = c.request
  const n = normalizePath(r.path, c.pathNormalization)
  if (!n.ok) return { ok: false, status: 400, reason: n.reason }
  const principal = r.sourcePrincipal ?? null
  const claims: Record<string, unknown> | null = r.jwt ? { iss: r.jwt.principal.slice(0, r.jwt.principal.lastIndexOf('/')), sub: r.jwt.principal.slice(r.jwt.principal.lastIndexOf('/') + 1), ...r.jwt.claims } : null
  const aud = claims?.aud
  return {
    ok: true,
    facts: {
      source: {
        principal,
        namespace: principal ? (NS_FROM_SPIFFE.exec(principal)?.[1] ?? null) : null,
        ip: r.sourceIp ?? DEFAULT_SOURCE_IP,
        ...(r.remoteIp !== undefined ? { remoteIp: r.remoteIp } : {}),
      },
      destination: { port: r.port ?? DEFAULT_PORT, ...(r.destinationIp !== undefined ? { ip: r.destinationIp } : {}) },
      request: {
        method: r.method ?? 'GET',
        host: r.host ?? DEFAULT_HOST,
        path: n.path,
        headers: r.headers ?? {},
        ...(r.sni !== undefined ? { sni: r.sni } : {}),
        auth:
          r.jwt && claims
            ? {
                principal: r.jwt.principal,
                audiences: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? (aud as string[]) : [],
                presenter: typeof claims.azp === 'string' ? claims.azp : null,
                claims,
              }
            : null,
      },
    },
  }
}

/** The `remora check` arguments that reproduce this case (policies in `files`). */
export function toCheckArgs(c: AuthzCase, files: string[]): string[] {
  const r = c.request
  const w = c.workload ?? DEFAULT_WORKLOAD
  const args = ['check', ...files.flatMap((f) => ['-f', f]), '--dest-namespace', w.namespace]
  const labels = Object.entries(w.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  if (labels) args.push('--dest-labels', labels)
  args.push('--method', r.method ?? 'GET', '--path', r.path, '--host', r.host ?? DEFAULT_HOST, '--port', String(r.port ?? DEFAULT_PORT))
  args.push('--source-ip', r.sourceIp ?? DEFAULT_SOURCE_IP)
  if (r.sourcePrincipal) args.push('--source-principal', r.sourcePrincipal)
  if (r.remoteIp !== undefined) args.push('--remote-ip', r.remoteIp)
  if (r.destinationIp !== undefined) args.push('--dest-ip', r.destinationIp)
  if (r.sni !== undefined) args.push('--sni', r.sni)
  for (const [k, v] of Object.entries(r.headers ?? {})) for (const one of Array.isArray(v) ? v : [v]) args.push('--header', `${k}: ${one}`)
  if (r.jwt) {
    args.push('--request-principal', r.jwt.principal)
    if (r.jwt.claims && Object.keys(r.jwt.claims).length) args.push('--claims', JSON.stringify(r.jwt.claims))
  }
  if (c.pathNormalization) args.push('--path-normalization', c.pathNormalization)
  args.push('-o', 'json')
  return args
}
