// Every validation error and warning of the catalog: the JSON path and the code it reports, and
// for each rejected form a valid twin that passes.
import { describe, expect, test } from 'vitest'
import { POLICY_ISSUES, parseDocuments, validate, validateDocuments, type PolicyIssueCode, type ValidateOptions } from '../../../proxy/policy/index.js'

const meta = { name: 'p', namespace: 'shop' }
const ap = (spec: unknown, metadata: unknown = meta) => ({ apiVersion: 'security.remora.dev/v1', kind: 'AuthorizationPolicy', metadata, spec })
const pa = (spec: unknown, metadata: unknown = meta) => ({ apiVersion: 'security.istio.io/v1beta1', kind: 'PeerAuthentication', metadata, spec })
const src = (source: unknown) => ap({ rules: [{ from: [{ source }] }] })
const op = (operation: unknown) => ap({ rules: [{ to: [{ operation }] }] })
const cond = (c: unknown) => ap({ rules: [{ when: [c] }] })
const ra = (spec: unknown, apiVersion = 'security.istio.io/v1') => ({ apiVersion, kind: 'RequestAuthentication', metadata: meta, spec })
const EC_JWK = { kty: 'EC', crv: 'P-256', kid: 'k1', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }
const JWKS = JSON.stringify({ keys: [EC_JWK] })
const jr = (rule: Record<string, unknown>) => ra({ jwtRules: [{ issuer: 'https://issuer.example.com', jwks: JWKS, ...rule }] })
const JR = 'spec.jwtRules[0]'
const SRC = 'spec.rules[0].from[0].source'
const OP = 'spec.rules[0].to[0].operation'

interface Row {
  name: string
  doc: unknown
  code: PolicyIssueCode
  path: string
  opts?: ValidateOptions
}

const errorRows: Row[] = [
  { name: 'a document that is not a mapping', doc: ['a'], code: 'REMORA_ERR_POLICY_NOT_OBJECT', path: '' },
  { name: 'an unknown apiVersion', doc: { ...ap({}), apiVersion: 'security.istio.io/v2' }, code: 'REMORA_ERR_POLICY_API_VERSION', path: 'apiVersion' },
  { name: 'a missing apiVersion', doc: { kind: 'AuthorizationPolicy', metadata: meta, spec: {} }, code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: 'apiVersion' },
  { name: 'an unknown kind', doc: { ...ap({}), kind: 'Sidecar' }, code: 'REMORA_ERR_POLICY_KIND', path: 'kind' },
  { name: 'a missing metadata', doc: { apiVersion: 'security.remora.dev/v1', kind: 'AuthorizationPolicy', spec: {} }, code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: 'metadata' },
  { name: 'a missing metadata.name', doc: ap({}, { namespace: 'shop' }), code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: 'metadata.name' },
  { name: 'a missing metadata.namespace', doc: ap({}, { name: 'p' }), code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: 'metadata.namespace' },
  { name: 'an invalid metadata.name', doc: ap({}, { name: 'Allow_All', namespace: 'shop' }), code: 'REMORA_ERR_POLICY_BAD_NAME', path: 'metadata.name' },
  { name: 'an invalid metadata.namespace', doc: ap({}, { name: 'p', namespace: 'a.b' }), code: 'REMORA_ERR_POLICY_BAD_NAME', path: 'metadata.namespace' },
  { name: 'an invalid creationTimestamp', doc: ap({}, { ...meta, creationTimestamp: 'yesterday' }), code: 'REMORA_ERR_POLICY_BAD_TIMESTAMP', path: 'metadata.creationTimestamp' },
  { name: 'an unknown metadata field', doc: ap({}, { ...meta, labelz: {} }), code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: 'metadata.labelz' },
  { name: 'an unknown top-level field', doc: { ...ap({}), specs: {} }, code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: 'specs' },
  { name: 'a missing spec', doc: { apiVersion: 'security.remora.dev/v1', kind: 'AuthorizationPolicy', metadata: meta }, code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: 'spec' },
  { name: 'an unknown spec field', doc: ap({ rule: [] }), code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: 'spec.rule' },
  { name: 'an unknown source field (typo)', doc: src({ principal: ['cluster.local/ns/a/sa/b'] }), code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: `${SRC}.principal` },
  { name: 'an unknown operation field', doc: op({ path: ['/a'] }), code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: `${OP}.path` },
  { name: 'serviceAccounts (Istio field not implemented)', doc: src({ serviceAccounts: ['shop/a'] }), code: 'REMORA_ERR_POLICY_UNSUPPORTED_FIELD', path: `${SRC}.serviceAccounts` },
  { name: 'trustDomains (Istio field not implemented)', doc: src({ trustDomains: ['td'] }), code: 'REMORA_ERR_POLICY_UNSUPPORTED_FIELD', path: `${SRC}.trustDomains` },
  { name: 'a string where a list is expected', doc: src({ principals: 'cluster.local/ns/a/sa/b' }), code: 'REMORA_ERR_POLICY_WRONG_TYPE', path: `${SRC}.principals` },
  { name: 'a number in a port list', doc: op({ ports: [8080] }), code: 'REMORA_ERR_POLICY_WRONG_TYPE', path: `${OP}.ports[0]` },
  { name: 'a boolean annotation', doc: ap({}, { ...meta, annotations: { 'istio.io/dry-run': true } }), code: 'REMORA_ERR_POLICY_WRONG_TYPE', path: 'metadata.annotations["istio.io/dry-run"]' },
  { name: 'rules is not a list', doc: ap({ rules: {} }), code: 'REMORA_ERR_POLICY_WRONG_TYPE', path: 'spec.rules' },
  { name: 'an empty principals list', doc: src({ principals: [] }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: `${SRC}.principals` },
  { name: 'an empty rules list', doc: ap({ rules: [] }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: 'spec.rules' },
  { name: 'an empty from list', doc: ap({ rules: [{ from: [] }] }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: 'spec.rules[0].from' },
  { name: 'an empty when list', doc: ap({ rules: [{ when: [] }] }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: 'spec.rules[0].when' },
  { name: 'an empty values list', doc: cond({ key: 'source.ip', values: [] }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: 'spec.rules[0].when[0].values' },
  { name: 'an empty portLevelMtls', doc: pa({ selector: { matchLabels: { app: 'a' } }, portLevelMtls: {} }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: 'spec.portLevelMtls' },
  { name: 'an empty string value', doc: op({ methods: ['GET', ''] }), code: 'REMORA_ERR_POLICY_EMPTY_VALUE', path: `${OP}.methods[1]` },
  { name: 'an invalid selector key', doc: ap({ selector: { matchLabels: { 'bad key': 'x' } } }), code: 'REMORA_ERR_POLICY_BAD_SELECTOR', path: 'spec.selector.matchLabels["bad key"]' },
  { name: 'a wildcard selector value', doc: ap({ selector: { matchLabels: { app: 'orders*' } } }), code: 'REMORA_ERR_POLICY_BAD_SELECTOR', path: 'spec.selector.matchLabels.app' },
  { name: 'targetRefs', doc: ap({ targetRefs: [{ kind: 'Service', name: 'orders' }] }), code: 'REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', path: 'spec.targetRefs' },
  { name: 'both selector and targetRef', doc: ap({ selector: { matchLabels: { app: 'a' } }, targetRef: { kind: 'Service', name: 'a' } }), code: 'REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', path: 'spec.targetRef' },
  { name: 'an unknown action', doc: ap({ action: 'REJECT' }), code: 'REMORA_ERR_POLICY_BAD_ACTION', path: 'spec.action' },
  { name: 'a lower-case action', doc: ap({ action: 'deny', rules: [{}] }), code: 'REMORA_ERR_POLICY_BAD_ACTION', path: 'spec.action' },
  { name: 'action CUSTOM', doc: ap({ action: 'CUSTOM', rules: [{}] }), code: 'REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', path: 'spec.action' },
  { name: 'a provider', doc: ap({ provider: { name: 'opa' } }), code: 'REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', path: 'spec.provider' },
  { name: 'a from entry without source', doc: ap({ rules: [{ from: [{}] }] }), code: 'REMORA_ERR_POLICY_EMPTY_SOURCE', path: `${SRC}` },
  { name: 'an empty source', doc: src({}), code: 'REMORA_ERR_POLICY_EMPTY_SOURCE', path: `${SRC}` },
  { name: 'a to entry without operation', doc: ap({ rules: [{ to: [{}] }] }), code: 'REMORA_ERR_POLICY_EMPTY_OPERATION', path: `${OP}` },
  { name: 'an empty operation', doc: op({}), code: 'REMORA_ERR_POLICY_EMPTY_OPERATION', path: `${OP}` },
  { name: 'a principal with an invalid trust domain', doc: src({ principals: ['cluster.local/ns/a/sa/b', 'Cluster.Local/ns/a/sa/b'] }), code: 'REMORA_ERR_POLICY_BAD_PRINCIPAL', path: `${SRC}.principals[1]` },
  { name: 'a principal with an empty path segment', doc: src({ notPrincipals: ['spiffe://cluster.local/ns//sa/b'] }), code: 'REMORA_ERR_POLICY_BAD_PRINCIPAL', path: `${SRC}.notPrincipals[0]` },
  { name: 'a principal with a space', doc: src({ principals: ['cluster.local/ns/a/sa/b c'] }), code: 'REMORA_ERR_POLICY_BAD_PRINCIPAL', path: `${SRC}.principals[0]` },
  { name: 'a principal prefix with an invalid trust domain', doc: src({ principals: ['HTTP://x/*'] }), code: 'REMORA_ERR_POLICY_BAD_PRINCIPAL', path: `${SRC}.principals[0]` },
  { name: 'a source.principal condition value', doc: cond({ key: 'source.principal', values: ['bad principal'] }), code: 'REMORA_ERR_POLICY_BAD_PRINCIPAL', path: 'spec.rules[0].when[0].values[0]' },
  { name: 'an invalid namespace', doc: src({ namespaces: ['Shop'] }), code: 'REMORA_ERR_POLICY_BAD_NAMESPACE', path: `${SRC}.namespaces[0]` },
  { name: 'an invalid source.namespace condition value', doc: cond({ key: 'source.namespace', notValues: ['a/b'] }), code: 'REMORA_ERR_POLICY_BAD_NAMESPACE', path: 'spec.rules[0].when[0].notValues[0]' },
  { name: 'a * in the middle of a principal', doc: src({ principals: ['cluster.local/ns/*/sa/b'] }), code: 'REMORA_ERR_POLICY_BAD_WILDCARD', path: `${SRC}.principals[0]` },
  { name: 'two * in a host', doc: op({ hosts: ['*.shop*'] }), code: 'REMORA_ERR_POLICY_BAD_WILDCARD', path: `${OP}.hosts[0]` },
  { name: 'a * in the middle of a path', doc: op({ paths: ['/api/*/users'] }), code: 'REMORA_ERR_POLICY_BAD_WILDCARD', path: `${OP}.paths[0]` },
  { name: '/api/** (two stars)', doc: op({ paths: ['/api/**'] }), code: 'REMORA_ERR_POLICY_BAD_WILDCARD', path: `${OP}.paths[0]` },
  { name: 'an invalid ipBlock', doc: src({ ipBlocks: ['10.0.0.0/33'] }), code: 'REMORA_ERR_POLICY_BAD_IP', path: `${SRC}.ipBlocks[0]` },
  { name: 'an IPv4 octet with a leading zero', doc: src({ notIpBlocks: ['10.01.0.0/16'] }), code: 'REMORA_ERR_POLICY_BAD_IP', path: `${SRC}.notIpBlocks[0]` },
  { name: 'an invalid remoteIpBlock', doc: src({ remoteIpBlocks: ['2001:db8::1::2'] }), code: 'REMORA_ERR_POLICY_BAD_IP', path: `${SRC}.remoteIpBlocks[0]` },
  { name: 'an invalid source.ip condition value', doc: cond({ key: 'source.ip', values: ['localhost'] }), code: 'REMORA_ERR_POLICY_BAD_IP', path: 'spec.rules[0].when[0].values[0]' },
  { name: 'a port out of range', doc: op({ ports: ['65536'] }), code: 'REMORA_ERR_POLICY_BAD_PORT', path: `${OP}.ports[0]` },
  { name: 'a port that is not a number', doc: op({ notPorts: ['http'] }), code: 'REMORA_ERR_POLICY_BAD_PORT', path: `${OP}.notPorts[0]` },
  { name: 'an invalid destination.port condition value', doc: cond({ key: 'destination.port', values: ['-1'] }), code: 'REMORA_ERR_POLICY_BAD_PORT', path: 'spec.rules[0].when[0].values[0]' },
  { name: 'a portLevelMtls port 0', doc: pa({ selector: { matchLabels: { app: 'a' } }, portLevelMtls: { '0': { mode: 'STRICT' } } }), code: 'REMORA_ERR_POLICY_BAD_PORT', path: 'spec.portLevelMtls["0"]' },
  { name: 'a path without a leading slash', doc: op({ paths: ['api/orders'] }), code: 'REMORA_ERR_POLICY_BAD_PATH', path: `${OP}.paths[0]` },
  { name: 'a path prefix without a leading slash', doc: op({ notPaths: ['api*'] }), code: 'REMORA_ERR_POLICY_BAD_PATH', path: `${OP}.notPaths[0]` },
  { name: 'a path with a query', doc: op({ paths: ['/api?x=1'] }), code: 'REMORA_ERR_POLICY_BAD_PATH', path: `${OP}.paths[0]` },
  { name: 'a path with a fragment', doc: op({ paths: ['/api#x'] }), code: 'REMORA_ERR_POLICY_BAD_PATH', path: `${OP}.paths[0]` },
  { name: '{**} not last', doc: op({ paths: ['/a/{**}/{*}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'two {**}', doc: op({ paths: ['/{**}/a/{**}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a named variable', doc: op({ paths: ['/a/{id}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a named variable with a match', doc: op({ paths: ['/a/{id=*}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'empty braces', doc: op({ paths: ['/a/{}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a template mixed with a * suffix', doc: op({ paths: ['/a/{*}/b*'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a template mixed with a * prefix', doc: op({ notPaths: ['*/a/{*}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.notPaths[0]` },
  { name: 'a template with a literal in the same segment', doc: op({ paths: ['/{**}.mpd'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a template with an empty segment', doc: op({ paths: ['/a//{*}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a template not starting with /', doc: op({ paths: ['a/{*}'] }), code: 'REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', path: `${OP}.paths[0]` },
  { name: 'a template in hosts', doc: op({ hosts: ['{*}.shop'] }), code: 'REMORA_ERR_POLICY_TEMPLATE_NOT_ALLOWED', path: `${OP}.hosts[0]` },
  { name: 'a template in a header condition', doc: cond({ key: 'request.headers[x-a]', values: ['/a/{**}'] }), code: 'REMORA_ERR_POLICY_TEMPLATE_NOT_ALLOWED', path: 'spec.rules[0].when[0].values[0]' },
  { name: 'an unknown when key', doc: cond({ key: 'request.method', values: ['GET'] }), code: 'REMORA_ERR_POLICY_WHEN_KEY_UNKNOWN', path: 'spec.rules[0].when[0].key' },
  { name: 'an experimental when key', doc: cond({ key: 'experimental.envoy.filters.a.b[c]', values: ['x'] }), code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', path: 'spec.rules[0].when[0].key' },
  { name: 'destination.labels', doc: cond({ key: 'destination.labels[app]', values: ['x'] }), code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', path: 'spec.rules[0].when[0].key' },
  { name: 'source.serviceAccount', doc: cond({ key: 'source.serviceAccount', values: ['shop/a'] }), code: 'REMORA_ERR_POLICY_WHEN_KEY_UNSUPPORTED', path: 'spec.rules[0].when[0].key' },
  { name: 'request.headers[] without a name', doc: cond({ key: 'request.headers[]', values: ['x'] }), code: 'REMORA_ERR_POLICY_BAD_WHEN_KEY', path: 'spec.rules[0].when[0].key' },
  { name: 'request.headers without brackets', doc: cond({ key: 'request.headers', values: ['x'] }), code: 'REMORA_ERR_POLICY_BAD_WHEN_KEY', path: 'spec.rules[0].when[0].key' },
  { name: 'claims with trailing garbage', doc: cond({ key: 'request.auth.claims[a]b', values: ['x'] }), code: 'REMORA_ERR_POLICY_BAD_WHEN_KEY', path: 'spec.rules[0].when[0].key' },
  { name: 'a condition without a key', doc: cond({ values: ['x'] }), code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: 'spec.rules[0].when[0].key' },
  { name: 'a condition without values or notValues', doc: cond({ key: 'source.ip' }), code: 'REMORA_ERR_POLICY_WHEN_NO_VALUES', path: 'spec.rules[0].when[0]' },
  { name: 'an unknown mtls mode', doc: pa({ mtls: { mode: 'ON' } }), code: 'REMORA_ERR_POLICY_BAD_MTLS_MODE', path: 'spec.mtls.mode' },
  { name: 'an unknown port-level mtls mode', doc: pa({ selector: { matchLabels: { app: 'a' } }, portLevelMtls: { '8080': { mode: 'strict' } } }), code: 'REMORA_ERR_POLICY_BAD_MTLS_MODE', path: 'spec.portLevelMtls["8080"].mode' },
  { name: 'portLevelMtls without a selector', doc: pa({ mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } }), code: 'REMORA_ERR_POLICY_PORT_MTLS_NO_SELECTOR', path: 'spec.portLevelMtls' },
  { name: 'portLevelMtls with an empty selector', doc: pa({ selector: { matchLabels: {} }, portLevelMtls: { '8080': { mode: 'DISABLE' } } }), code: 'REMORA_ERR_POLICY_PORT_MTLS_NO_SELECTOR', path: 'spec.portLevelMtls' },
  { name: 'an unknown PeerAuthentication field', doc: pa({ mtls: { mode: 'STRICT', strict: true } }), code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: 'spec.mtls.strict' },
  // --- RequestAuthentication ---
  { name: 'a jwtRule without issuer', doc: ra({ jwtRules: [{ jwks: JWKS }] }), code: 'REMORA_ERR_POLICY_MISSING_FIELD', path: `${JR}.issuer` },
  { name: 'an unknown jwtRule field (typo)', doc: jr({ jwks_uri: 'https://x' }), code: 'REMORA_ERR_POLICY_UNKNOWN_FIELD', path: `${JR}.jwks_uri` },
  { name: 'an empty jwtRules list', doc: ra({ jwtRules: [] }), code: 'REMORA_ERR_POLICY_EMPTY_LIST', path: 'spec.jwtRules' },
  { name: 'RequestAuthentication targetRef', doc: ra({ targetRef: { kind: 'Service', name: 'a' } }), code: 'REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', path: 'spec.targetRef' },
  { name: 'both jwks and jwksUri', doc: jr({ jwksUri: 'https://issuer.example.com/jwks' }), code: 'REMORA_ERR_POLICY_JWKS_SOURCE', path: `${JR}.jwks` },
  { name: 'neither jwks nor jwksUri (no OIDC discovery)', doc: ra({ jwtRules: [{ issuer: 'https://issuer.example.com' }] }), code: 'REMORA_ERR_POLICY_JWKS_SOURCE', path: `${JR}.jwksUri` },
  { name: 'a jwksUri over plain http to a remote host', doc: ra({ jwtRules: [{ issuer: 'i', jwksUri: 'http://issuer.example.com/jwks' }] }), code: 'REMORA_ERR_POLICY_JWKS_URI', path: `${JR}.jwksUri` },
  { name: 'a jwksUri with credentials', doc: ra({ jwtRules: [{ issuer: 'i', jwksUri: 'https://u:p@issuer.example.com/jwks' }] }), code: 'REMORA_ERR_POLICY_JWKS_URI', path: `${JR}.jwksUri` },
  { name: 'a relative jwksUri', doc: ra({ jwtRules: [{ issuer: 'i', jwksUri: '/jwks' }] }), code: 'REMORA_ERR_POLICY_JWKS_URI', path: `${JR}.jwksUri` },
  { name: 'inline jwks that is not JSON', doc: jr({ jwks: '{keys' }), code: 'REMORA_ERR_POLICY_JWKS', path: `${JR}.jwks` },
  { name: 'inline jwks with an HMAC key', doc: jr({ jwks: JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }) }), code: 'REMORA_ERR_POLICY_JWKS', path: `${JR}.jwks` },
  { name: 'inline jwks with a private key', doc: jr({ jwks: JSON.stringify({ keys: [{ ...EC_JWK, d: 'abc' }] }) }), code: 'REMORA_ERR_POLICY_JWKS', path: `${JR}.jwks` },
  { name: 'inline jwks whose alg does not fit the key', doc: jr({ jwks: JSON.stringify({ keys: [{ ...EC_JWK, alg: 'RS256' }] }) }), code: 'REMORA_ERR_POLICY_JWKS', path: `${JR}.jwks` },
  { name: 'inline jwks with an encryption key', doc: jr({ jwks: JSON.stringify({ keys: [{ ...EC_JWK, use: 'enc' }] }) }), code: 'REMORA_ERR_POLICY_JWKS', path: `${JR}.jwks` },
  { name: 'inline jwks with no keys', doc: jr({ jwks: '{"keys":[]}' }), code: 'REMORA_ERR_POLICY_JWKS', path: `${JR}.jwks` },
  { name: 'a fromHeaders name with a space', doc: jr({ fromHeaders: [{ name: 'x jwt' }] }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.fromHeaders[0].name` },
  { name: 'outputClaimToHeaders into x-forwarded-client-cert', doc: jr({ outputClaimToHeaders: [{ header: 'X-Forwarded-Client-Cert', claim: 'sub' }] }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.outputClaimToHeaders[0].header` },
  { name: 'outputPayloadToHeader into authorization', doc: jr({ outputPayloadToHeader: 'authorization' }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.outputPayloadToHeader` },
  { name: 'outputClaimToHeaders into x-envoy-* (the sidecar strips that namespace: policies would never see the verified value)', doc: jr({ outputClaimToHeaders: [{ header: 'x-envoy-user', claim: 'sub' }] }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.outputClaimToHeaders[0].header` },
  { name: 'outputPayloadToHeader into x-remora-*', doc: jr({ outputPayloadToHeader: 'X-Remora-Payload' }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.outputPayloadToHeader` },
  { name: 'a fromHeaders name in x-envoy-* (stripped at ingress: the token could never arrive)', doc: jr({ fromHeaders: [{ name: 'x-envoy-jwt' }] }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.fromHeaders[0].name` },
  { name: 'a bad cookie name', doc: jr({ fromCookies: ['a;b'] }), code: 'REMORA_ERR_POLICY_BAD_HEADER_NAME', path: `${JR}.fromCookies[0]` },
  { name: 'a timeout that is not a duration', doc: jr({ timeout: '5 seconds' }), code: 'REMORA_ERR_POLICY_BAD_DURATION', path: `${JR}.timeout` },
  { name: 'forwardOriginalToken as a string', doc: jr({ forwardOriginalToken: 'true' }), code: 'REMORA_ERR_POLICY_WRONG_TYPE', path: `${JR}.forwardOriginalToken` },
]

const warningRows: Row[] = [
  { name: 'a principal in a trust domain the mesh does not use', doc: src({ principals: ['cluster.local/ns/a/sa/b', 'other.td/ns/a/sa/b'] }), opts: { trustDomains: ['cluster.local'] }, code: 'REMORA_WARN_POLICY_TRUST_DOMAIN', path: `${SRC}.principals[1]` },
  { name: 'a notPrincipal prefix in another trust domain', doc: src({ notPrincipals: ['spiffe://other.td/*'] }), opts: { trustDomains: ['cluster.local'] }, code: 'REMORA_WARN_POLICY_TRUST_DOMAIN', path: `${SRC}.notPrincipals[0]` },
  { name: 'a source.principal condition in another trust domain', doc: cond({ key: 'source.principal', values: ['other.td/ns/a/sa/b'] }), opts: { trustDomains: ['cluster.local'] }, code: 'REMORA_WARN_POLICY_TRUST_DOMAIN', path: 'spec.rules[0].when[0].values[0]' },
  { name: 'a selector that matches no known workload', doc: ap({ selector: { matchLabels: { app: 'ordres' } }, rules: [{}] }), opts: { knownWorkloads: [{ namespace: 'shop', labels: { app: 'orders' } }] }, code: 'REMORA_WARN_POLICY_SELECTOR_NO_MATCH', path: 'spec.selector.matchLabels' },
  { name: 'a selector that matches a workload of another namespace only', doc: ap({ selector: { matchLabels: { app: 'orders' } }, rules: [{}] }), opts: { knownWorkloads: [{ namespace: 'billing', labels: { app: 'orders' } }] }, code: 'REMORA_WARN_POLICY_SELECTOR_NO_MATCH', path: 'spec.selector.matchLabels' },
  { name: 'a DENY with no rules', doc: ap({ action: 'DENY' }), code: 'REMORA_WARN_POLICY_DENY_NO_RULES', path: 'spec.rules' },
  { name: 'a dry-run annotation "yes" (read as false: enforced)', doc: ap({ rules: [{}] }, { ...meta, annotations: { 'istio.io/dry-run': 'yes' } }), code: 'REMORA_WARN_POLICY_DRY_RUN_VALUE', path: 'metadata.annotations["istio.io/dry-run"]' },
  { name: 'a dry-run annotation "True" (read as true)', doc: ap({ rules: [{}] }, { ...meta, annotations: { 'remora.dev/dry-run': 'True' } }), code: 'REMORA_WARN_POLICY_DRY_RUN_VALUE', path: 'metadata.annotations["remora.dev/dry-run"]' },
  { name: 'a dry-run annotation on a PeerAuthentication', doc: pa({ mtls: { mode: 'STRICT' } }, { ...meta, annotations: { 'remora.dev/dry-run': 'true' } }), code: 'REMORA_WARN_POLICY_DRY_RUN_IGNORED', path: 'metadata.annotations["remora.dev/dry-run"]' },
  { name: 'a selector without labels', doc: ap({ selector: {}, rules: [{}] }), code: 'REMORA_WARN_POLICY_EMPTY_SELECTOR', path: 'spec.selector' },
  { name: 'a PeerAuthentication with a selector in the root namespace', doc: pa({ selector: { matchLabels: { app: 'a' } }, mtls: { mode: 'STRICT' } }, { name: 'p', namespace: 'remora-system' }), code: 'REMORA_WARN_POLICY_ROOT_SELECTOR_IGNORED', path: 'spec.selector' },
  { name: 'a lower-case method', doc: op({ methods: ['GET', 'post'] }), code: 'REMORA_WARN_POLICY_METHOD_CASE', path: `${OP}.methods[1]` },
  { name: 'a path with //', doc: op({ paths: ['//admin'] }), code: 'REMORA_WARN_POLICY_PATH_NOT_NORMALIZED', path: `${OP}.paths[0]` },
  { name: 'a path with a dot segment', doc: op({ notPaths: ['/a/../admin'] }), code: 'REMORA_WARN_POLICY_PATH_NOT_NORMALIZED', path: `${OP}.notPaths[0]` },
  { name: 'a path with an encoded unreserved character', doc: op({ paths: ['/%61dmin'] }), code: 'REMORA_WARN_POLICY_PATH_NOT_NORMALIZED', path: `${OP}.paths[0]` },
  { name: 'a path prefix with %2F (rejected under MERGE_SLASHES)', doc: op({ paths: ['/a%2Fb/*'] }), code: 'REMORA_WARN_POLICY_PATH_NOT_NORMALIZED', path: `${OP}.paths[0]` },
]

const validTwins: { name: string; doc: unknown; opts?: ValidateOptions }[] = [
  { name: 'spec: {}', doc: ap({}) },
  { name: 'rules: [{}]', doc: ap({ rules: [{}] }) },
  { name: 'every source field', doc: src({ principals: ['cluster.local/ns/a/sa/b', 'spiffe://cluster.local/ns/a/sa/c', '*', 'cluster.local/*', '*/sa/b'], notPrincipals: ['cluster.local/ns/x/sa/y'], requestPrincipals: ['https://iss.example.com/*'], notRequestPrincipals: ['*'], namespaces: ['web', 'we*', '*eb', '*'], notNamespaces: ['batch'], ipBlocks: ['10.0.0.0/8', '10.1.2.3', '2001:db8::/32', '::1'], notIpBlocks: ['10.0.0.1/32'], remoteIpBlocks: ['203.0.113.0/24'], notRemoteIpBlocks: ['::ffff:10.0.0.0/104'] }) },
  { name: 'every operation field', doc: op({ hosts: ['orders.shop', 'orders.shop:*', '*.shop'], notHosts: ['x'], ports: ['8080', '0'], notPorts: ['9090'], methods: ['GET', 'P*'], notMethods: ['DELETE'], paths: ['/a', '/a/*', '*.png', '*', '/a/{*}/b', '/{**}/status', '/x/{**}', '/v1/{*}/'], notPaths: ['/admin*'] }) },
  { name: 'every supported when key', doc: ap({ rules: [{ when: [
    { key: 'request.headers[X-User]', values: ['a', '*'] },
    { key: 'source.ip', values: ['10.0.0.0/8'] },
    { key: 'remote.ip', notValues: ['10.0.0.1'] },
    { key: 'source.namespace', values: ['web'] },
    { key: 'source.principal', values: ['cluster.local/ns/a/sa/b'] },
    { key: 'request.auth.principal', values: ['iss/sub'] },
    { key: 'request.auth.audiences', values: ['orders'] },
    { key: 'request.auth.presenter', values: ['web'] },
    { key: 'request.auth.claims[groups]', values: ['admin'] },
    { key: 'request.auth.claims[realm][roles]', values: ['admin'] },
    { key: 'destination.ip', values: ['10.0.0.1'] },
    { key: 'destination.port', values: ['8080'] },
    { key: 'connection.sni', values: ['*.shop'] },
  ] }] }) },
  { name: 'a PeerAuthentication with portLevelMtls and a selector', doc: pa({ selector: { matchLabels: { app: 'a' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' }, '9090': {} } }) },
  { name: 'a PeerAuthentication with UNSET', doc: pa({ mtls: { mode: 'UNSET' } }) },
  { name: 'kubectl bookkeeping in metadata', doc: ap({}, { ...meta, uid: 'x', resourceVersion: '1', generation: 2, creationTimestamp: '2024-05-01T10:00:00Z', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } }) },
  { name: 'a dry-run annotation "true"', doc: ap({ rules: [{}] }, { ...meta, annotations: { 'istio.io/dry-run': 'true' } }) },
  { name: 'a principal in a known trust domain', doc: src({ principals: ['cluster.local/ns/a/sa/b'] }), opts: { trustDomains: ['cluster.local'] } },
  { name: 'a selector that matches a known workload', doc: ap({ selector: { matchLabels: { app: 'orders' } }, rules: [{}] }), opts: { knownWorkloads: [{ namespace: 'shop', labels: { app: 'orders', v: '1' } }] } },
  { name: 'a root-namespace selector matching a workload of any namespace', doc: ap({ selector: { matchLabels: { app: 'orders' } }, rules: [{}] }, { name: 'p', namespace: 'remora-system' }), opts: { knownWorkloads: [{ namespace: 'shop', labels: { app: 'orders' } }] } },
  { name: 'a DENY with rules', doc: ap({ action: 'DENY', rules: [{}] }) },
  { name: 'a path prefix ending in the middle of a segment', doc: op({ paths: ['/api/v*', '/a/.*'] }) },
  { name: 'a RequestAuthentication with every jwtRule field (security.istio.io/v1)', doc: ra({ selector: { matchLabels: { app: 'orders' } }, jwtRules: [{ issuer: 'https://issuer.example.com', audiences: ['orders'], jwksUri: 'https://issuer.example.com/jwks', fromHeaders: [{ name: 'x-jwt', prefix: 'Token ' }], fromParams: ['token'], fromCookies: ['session'], forwardOriginalToken: true, outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }, { header: 'x-role', claim: 'realm.role' }], timeout: '2s' }] }) },
  { name: 'a RequestAuthentication with inline jwks (security.remora.dev/v1)', doc: ra({ jwtRules: [{ issuer: 'i', jwks: JWKS }] }, 'security.remora.dev/v1') },
  { name: 'a RequestAuthentication with an http jwksUri on loopback (security.istio.io/v1beta1)', doc: ra({ jwtRules: [{ issuer: 'i', jwksUri: 'http://127.0.0.1:8080/jwks' }, { issuer: 'j', jwksUri: 'http://[::1]:9/k' }, { issuer: 'k', jwksUri: 'http://localhost/k' }] }, 'security.istio.io/v1beta1') },
  { name: 'a RequestAuthentication without rules', doc: ra({}) },
]

describe('validate(): errors', () => {
  test.each(errorRows.map((r) => [r.name, r] as const))('%s', (_n, r) => {
    const res = validate(r.doc, r.opts)
    expect(res.policy).toBeNull()
    expect(res.errors).toContainEqual(expect.objectContaining({ code: r.code, path: r.path, severity: 'error' }))
    for (const e of res.errors) expect(e.message.length).toBeGreaterThan(5)
  })
})

describe('validate(): warnings', () => {
  test.each(warningRows.map((r) => [r.name, r] as const))('%s', (_n, r) => {
    const res = validate(r.doc, r.opts)
    expect(res.errors).toEqual([])
    expect(res.policy).not.toBeNull()
    expect(res.warnings).toContainEqual(expect.objectContaining({ code: r.code, path: r.path, severity: 'warning' }))
  })
})

describe('validate(): valid documents', () => {
  test.each(validTwins.map((r) => [r.name, r] as const))('%s', (_n, r) => {
    const res = validate(r.doc, r.opts)
    expect(res.errors).toEqual([])
    expect(res.warnings).toEqual([])
    expect(res.policy).toBe(r.doc)
  })
})

test('every code of the catalog is exercised by this file', () => {
  const used = new Set<string>([...errorRows, ...warningRows].map((r) => r.code))
  used.add('REMORA_ERR_POLICY_PARSE')
  used.add('REMORA_ERR_POLICY_DUPLICATE')
  expect(Object.keys(POLICY_ISSUES).filter((c) => !used.has(c))).toEqual([])
})

test('an unknown field suggests the closest known one', () => {
  const res = validate(src({ notPrincipal: ['x/y'] }))
  expect(res.errors[0]?.message).toContain('did you mean "notPrincipals"?')
})

test('all errors of a document are reported at once', () => {
  const res = validate(ap({ action: 'CUSTOM', rules: [{ from: [{ source: { principals: ['a b'] } }], to: [{ operation: { paths: ['x'] } }] }] }))
  expect(res.errors.map((e) => e.code).sort()).toEqual(['REMORA_ERR_POLICY_BAD_PATH', 'REMORA_ERR_POLICY_BAD_PRINCIPAL', 'REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED'])
})

describe('parseDocuments()', () => {
  test('YAML multi-document with line numbers, empty documents skipped', () => {
    const r = parseDocuments('a: 1\n---\n---\nb: 2\n', 'f.yaml')
    expect(r.errors).toEqual([])
    expect(r.docs.map((d) => [d.index, d.line, d.value])).toEqual([
      [0, 1, { a: 1 }],
      [1, 4, { b: 2 }],
    ])
  })

  test('a JSON object and a JSON array of documents', () => {
    expect(parseDocuments('{"a": 1}', 'f.json').docs.map((d) => d.value)).toEqual([{ a: 1 }])
    const arr = parseDocuments('[\n {"a": 1},\n {"b": 2}\n]', 'f.json')
    expect(arr.docs.map((d) => [d.line, d.value])).toEqual([
      [2, { a: 1 }],
      [3, { b: 2 }],
    ])
  })

  test('a Kubernetes List is expanded into its items', () => {
    const r = parseDocuments('apiVersion: v1\nkind: List\nitems:\n- a: 1\n- b: 2\n', 'l.yaml')
    expect(r.docs.map((d) => [d.line, d.value])).toEqual([
      [4, { a: 1 }],
      [5, { b: 2 }],
    ])
  })

  test('a syntax error carries its line (one error per document)', () => {
    const r = parseDocuments('a: 1\n---\nb: [1, 2\nc: 3\n', 'bad.yaml')
    expect(r.docs.map((d) => d.value)).toEqual([{ a: 1 }])
    expect(r.errors).toHaveLength(1)
    expect(r.errors[0]).toMatchObject({ code: 'REMORA_ERR_POLICY_PARSE', source: 'bad.yaml' })
    expect(r.errors[0]!.line).toBeGreaterThanOrEqual(3)
  })

  test('a duplicate key is a parse error', () => {
    expect(parseDocuments('a: 1\na: 2\n', 'd.yaml').errors[0]?.code).toBe('REMORA_ERR_POLICY_PARSE')
  })
})

describe('validateDocuments()', () => {
  const good = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: shop}\nspec: {}\n'
  test('issues name their file, document index and line', () => {
    const bad = `${good}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: b, namespace: shop}\nspec: {action: CUSTOM}\n`
    const r = validateDocuments([{ source: 'p.yaml', text: bad }])
    expect(r.policies.map((p) => p.metadata.name)).toEqual(['a'])
    expect(r.errors).toEqual([expect.objectContaining({ code: 'REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', path: 'spec.action', source: 'p.yaml', doc: 1, line: 6 })])
  })

  test('the same kind/namespace/name twice is an error naming the first', () => {
    const r = validateDocuments([
      { source: 'a.yaml', text: good },
      { source: 'b.yaml', text: good },
    ])
    expect(r.policies).toHaveLength(1)
    expect(r.errors).toEqual([expect.objectContaining({ code: 'REMORA_ERR_POLICY_DUPLICATE', source: 'b.yaml', doc: 0 })])
    expect(r.errors[0]!.message).toContain('a.yaml#0')
  })

  test('the same name in two kinds is not a duplicate', () => {
    const peer = 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n'
    const r = validateDocuments([{ source: 'a.yaml', text: `${good}---\n${peer}` }])
    expect(r.errors).toEqual([])
    expect(r.policies).toHaveLength(2)
  })

  test('warnings carry their source too', () => {
    const r = validateDocuments([{ source: 'w.yaml', text: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: d, namespace: shop}\nspec: {action: DENY}\n' }])
    expect(r.warnings).toEqual([expect.objectContaining({ code: 'REMORA_WARN_POLICY_DENY_NO_RULES', source: 'w.yaml', doc: 0, line: 1 })])
  })
})
