// SHARED LEAF: policy schema + validate + compile + evaluate (Istio's AuthorizationPolicy and
// PeerAuthentication semantics), and request-path normalization. Pure: no I/O, no clock, no
// globals; imports nothing else from the repo. The control plane imports this index only.
export { POLICY_ISSUES, formatPolicyIssue, type PolicyIssue, type PolicyIssueCode, type PolicyIssueSeverity, type PolicyIssueSpec } from './errors.js'
export {
  API_VERSIONS,
  DEFAULT_ROOT_NAMESPACE,
  DRY_RUN_ANNOTATIONS,
  type ApiVersion,
  type AuthorizationPolicy,
  type AuthorizationPolicySpec,
  type AuthzAction,
  type Condition,
  type Decision,
  type DryRunResult,
  type MtlsMode,
  type MtlsModeInput,
  type ObjectMeta,
  type Operation,
  type PeerAuthentication,
  type PeerAuthenticationSpec,
  type PolicyDocument,
  type PolicyKind,
  type RequestAuth,
  type RequestFacts,
  type Rule,
  type Source,
  type WorkloadSelector,
} from './types.js'
export { parseDocuments, type ParsedDocument, type ParseResult } from './parse.js'
export {
  validate,
  validateDocuments,
  type DocumentsValidation,
  type PolicySource,
  type ValidateOptions,
  type ValidationResult,
  type WorkloadRef,
} from './validate.js'
export {
  compile,
  evaluate,
  explain,
  mtlsModeFor,
  selectForWorkload,
  type AppliedPolicy,
  type CompiledAuthz,
  type CompiledPolicySet,
  type CompileOptions,
  type Explanation,
  type PeerAuthnResult,
  type PolicyExplanation,
  type RuleExplanation,
  type WorkloadPolicy,
  type WorkloadRefInput,
} from './compile.js'
export {
  DEFAULT_PATH_NORMALIZATION,
  PATH_NORMALIZATIONS,
  normalizePath,
  type NormalizedTarget,
  type PathNormalization,
} from './path.js'
