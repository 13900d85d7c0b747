// validate(): one policy document → typed policy, or errors that each carry a JSON path and a
// stable code. A field remora does not implement is an error, never ignored: an ignored security
// field is a hole. Warnings flag what Istio accepts but is probably a mistake.
import { z } from 'zod'
import { policyIssue, type PolicyIssue, type PolicyIssueCode } from './errors.js'
import { parseCidr } from './ip.js'
import { parseDocuments } from './parse.js'
import { createRequestAuthnSpecSchema, REQUEST_AUTHN_FIELDS } from './request-authn.js'
import { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalization } from './path.js'
import {
  API_VERSIONS,
  DEFAULT_ROOT_NAMESPACE,
  DRY_RUN_ANNOTATIONS,
  type AuthorizationPolicy,
  type PolicyDocument,
} from './types.js'
import {
  bracesProblem,
  containsPathTemplate,
  formatPath,
  isDns1123Label,
  isDns1123Subdomain,
  labelKeyProblem,
  labelValueProblem,
  namespaceProblem,
  parseGoBool,
  parsePattern,
  parsePort,
  parseWhenKey,
  pathTemplateProblem,
  principalProblem,
  principalTrustDomain,
  wildcardProblem,
} from './values.js'

export interface WorkloadRef {
  readonly namespace: string
  readonly labels: Readonly<Record<string, string>>
}

export interface ValidateOptions {
  /** Trust domains the mesh uses; a principal pinned to another one gets a warning. */
  readonly trustDomains?: readonly string[]
  /** Known workloads; a selector that matches none of them gets a warning. */
  readonly knownWorkloads?: readonly WorkloadRef[]
  /** Root namespace (mesh-wide scope), default `remora-system`. */
  readonly rootNamespace?: string
  /** Normalization the sidecar applies; used to warn about paths that can never match. Default MERGE_SLASHES. */
  readonly pathNormalization?: PathNormalization
}

export interface ValidationResult {
  /** The typed document when there is no error (warnings allowed), else null. */
  readonly policy: PolicyDocument | null
  readonly errors: PolicyIssue[]
  readonly warnings: PolicyIssue[]
}

// ---------------------------------------------------------------------------------------------
// zod schemas. Custom issues carry their code in params.code; structural issues are mapped below.

type Check = (v: string) => readonly [PolicyIssueCode, string] | null

function refineWith(check: Check) {
  return (v: string, ctx: z.RefinementCtx) => {
    const r = check(v)
    if (r) ctx.addIssue({ code: 'custom', message: r[1], params: { code: r[0] } })
  }
}

const valueList = (check: Check) => z.array(z.string().min(1).superRefine(refineWith(check))).min(1)

const templateNotAllowed: Check = (v) =>
  containsPathTemplate(v) ? ['REMORA_ERR_POLICY_TEMPLATE_NOT_ALLOWED', `"${v}": path templates ({*}, {**}) are only allowed in paths and notPaths`] : null

const both =
  (...checks: Check[]): Check =>
  (v) => {
    for (const c of checks) {
      const r = c(v)
      if (r) return r
    }
    return null
  }

const wildcard: Check = (v) => {
  const w = wildcardProblem(v)
  return w ? ['REMORA_ERR_POLICY_BAD_WILDCARD', w] : null
}
const principal: Check = both(templateNotAllowed, wildcard, (v) => {
  const p = principalProblem(v)
  return p ? ['REMORA_ERR_POLICY_BAD_PRINCIPAL', p] : null
})
const namespace: Check = both(templateNotAllowed, wildcard, (v) => {
  const p = namespaceProblem(v)
  return p ? ['REMORA_ERR_POLICY_BAD_NAMESPACE', p] : null
})
const ipBlock: Check = (v) => (parseCidr(v) ? null : ['REMORA_ERR_POLICY_BAD_IP', `"${v}" is not an IPv4/IPv6 address or CIDR range`])
const port: Check = (v) => (parsePort(v) !== null ? null : ['REMORA_ERR_POLICY_BAD_PORT', `"${v}" is not a port number (0..65535)`])
const plain: Check = both(templateNotAllowed, wildcard)
const path: Check = (v) => {
  if (containsPathTemplate(v)) {
    const t = pathTemplateProblem(v)
    return t ? ['REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', `"${v}": ${t}`] : null
  }
  const b = bracesProblem(v)
  if (b) return ['REMORA_ERR_POLICY_BAD_PATH_TEMPLATE', b]
  const w = wildcardProblem(v)
  if (w) return ['REMORA_ERR_POLICY_BAD_WILDCARD', v.includes('/*/') ? `${w}; to match one path segment use the {*} template` : w]
  if (v.includes('?') || v.includes('#')) {
    return ['REMORA_ERR_POLICY_BAD_PATH', `"${v}" contains "?" or "#": paths are matched without the query string and fragment`]
  }
  const p = parsePattern(v)
  if ((p.kind === 'exact' || p.kind === 'prefix') && !p.value.startsWith('/')) {
    return ['REMORA_ERR_POLICY_BAD_PATH', `"${v}" does not start with "/", so it can never match a request path`]
  }
  return null
}

function unsupported(code: PolicyIssueCode, message: string) {
  return z
    .unknown()
    .superRefine((_v, ctx) => ctx.addIssue({ code: 'custom', message, params: { code } }))
    .optional()
}

const labelMap = z.record(z.string(), z.string())

const selectorSchema = z
  .strictObject({ matchLabels: labelMap.optional() })
  .superRefine((sel, ctx) => {
    for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
      const p = labelKeyProblem(k) ?? labelValueProblem(v)
      if (p) ctx.addIssue({ code: 'custom', message: p, path: ['matchLabels', k], params: { code: 'REMORA_ERR_POLICY_BAD_SELECTOR' } })
    }
  })

const targetRefMessage = 'targetRef/targetRefs (Gateway API policy attachment) is not supported by remora; use selector.matchLabels'

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

const metadataSchema = z.strictObject({
  name: z
    .string()
    .superRefine(
      refineWith((v) => (isDns1123Subdomain(v) ? null : ['REMORA_ERR_POLICY_BAD_NAME', `"${v}" is not a valid name (lower-case DNS subdomain, at most 253 characters)`])),
    ),
  namespace: z
    .string()
    .superRefine(
      refineWith((v) => (isDns1123Label(v) ? null : ['REMORA_ERR_POLICY_BAD_NAME', `"${v}" is not a valid namespace (lower-case DNS label, at most 63 characters)`])),
    ),
  annotations: labelMap.optional(),
  labels: labelMap.optional(),
  creationTimestamp: z
    .string()
    .superRefine(
      refineWith((v) =>
        RFC3339.test(v) && !Number.isNaN(Date.parse(v)) ? null : ['REMORA_ERR_POLICY_BAD_TIMESTAMP', `"${v}" is not an RFC 3339 date-time`],
      ),
    )
    .optional(),
  // Kubernetes bookkeeping that `kubectl get -o yaml` prints: accepted and ignored, never security-relevant.
  uid: z.unknown().optional(),
  resourceVersion: z.unknown().optional(),
  generation: z.unknown().optional(),
  managedFields: z.unknown().optional(),
  selfLink: z.unknown().optional(),
  finalizers: z.unknown().optional(),
  ownerReferences: z.unknown().optional(),
  generateName: z.unknown().optional(),
  deletionTimestamp: z.unknown().optional(),
  deletionGracePeriodSeconds: z.unknown().optional(),
})

const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const
const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const

const sourceSchema = z.strictObject({
  principals: valueList(principal).optional(),
  notPrincipals: valueList(principal).optional(),
  requestPrincipals: valueList(plain).optional(),
  notRequestPrincipals: valueList(plain).optional(),
  namespaces: valueList(namespace).optional(),
  notNamespaces: valueList(namespace).optional(),
  ipBlocks: valueList(ipBlock).optional(),
  notIpBlocks: valueList(ipBlock).optional(),
  remoteIpBlocks: valueList(ipBlock).optional(),
  notRemoteIpBlocks: valueList(ipBlock).optional(),
  serviceAccounts: unsupported('REMORA_ERR_POLICY_UNSUPPORTED_FIELD', 'serviceAccounts is not supported by remora yet; use principals'),
  notServiceAccounts: unsupported('REMORA_ERR_POLICY_UNSUPPORTED_FIELD', 'notServiceAccounts is not supported by remora yet; use notPrincipals'),
  trustDomains: unsupported('REMORA_ERR_POLICY_UNSUPPORTED_FIELD', 'trustDomains is not supported by remora yet; use principals: ["<td>/*"]'),
  notTrustDomains: unsupported('REMORA_ERR_POLICY_UNSUPPORTED_FIELD', 'notTrustDomains is not supported by remora yet; use notPrincipals: ["<td>/*"]'),
})

const operationSchema = z.strictObject({
  hosts: valueList(plain).optional(),
  notHosts: valueList(plain).optional(),
  ports: valueList(port).optional(),
  notPorts: valueList(port).optional(),
  methods: valueList(plain).optional(),
  notMethods: valueList(plain).optional(),
  paths: valueList(path).optional(),
  notPaths: valueList(path).optional(),
})

const conditionSchema = z
  .strictObject({
    key: z.string().min(1),
    values: z.array(z.string().min(1)).min(1).optional(),
    notValues: z.array(z.string().min(1)).min(1).optional(),
  })
  .superRefine((c, ctx) => {
    const add = (code: PolicyIssueCode, message: string, p: PropertyKey[]) => ctx.addIssue({ code: 'custom', message, path: p, params: { code } })
    const k = parseWhenKey(c.key)
    if (!k.ok) return add(k.code, k.message, ['key'])
    if (!c.values && !c.notValues) return add('REMORA_ERR_POLICY_WHEN_NO_VALUES', `at least one of values or notValues must be set for key ${c.key}`, [])
    let check: Check
    switch (k.key.kind) {
      case 'source.ip':
      case 'remote.ip':
      case 'destination.ip':
        check = ipBlock
        break
      case 'destination.port':
        check = port
        break
      case 'source.principal':
        check = principal
        break
      case 'source.namespace':
        check = namespace
        break
      default:
        check = plain
    }
    for (const field of ['values', 'notValues'] as const) {
      c[field]?.forEach((v, i) => {
        const r = check(v)
        if (r) add(r[0], r[1], [field, i])
      })
    }
  })

const ruleSchema = z.strictObject({
  from: z
    .array(
      z.strictObject({ source: sourceSchema.optional() }).superRefine((f, ctx) => {
        if (!f.source) ctx.addIssue({ code: 'custom', message: 'from[].source is required', path: ['source'], params: { code: 'REMORA_ERR_POLICY_EMPTY_SOURCE' } })
        else if (!SOURCE_FIELDS.some((k) => f.source?.[k] !== undefined)) {
          ctx.addIssue({ code: 'custom', message: 'source must set at least one field', path: ['source'], params: { code: 'REMORA_ERR_POLICY_EMPTY_SOURCE' } })
        }
      }),
    )
    .min(1)
    .optional(),
  to: z
    .array(
      z.strictObject({ operation: operationSchema.optional() }).superRefine((t, ctx) => {
        if (!t.operation) {
          ctx.addIssue({ code: 'custom', message: 'to[].operation is required', path: ['operation'], params: { code: 'REMORA_ERR_POLICY_EMPTY_OPERATION' } })
        } else if (!OPERATION_FIELDS.some((k) => t.operation?.[k] !== undefined)) {
          ctx.addIssue({ code: 'custom', message: 'operation must set at least one field', path: ['operation'], params: { code: 'REMORA_ERR_POLICY_EMPTY_OPERATION' } })
        }
      }),
    )
    .min(1)
    .optional(),
  when: z.array(conditionSchema).min(1).optional(),
})

const authzSpecSchema = z.strictObject({
  selector: selectorSchema.optional(),
  action: z
    .string()
    .superRefine(
      refineWith((v) =>
        v === 'CUSTOM'
          ? ['REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', 'action CUSTOM (external authorization) is not supported by remora']
          : v === 'ALLOW' || v === 'DENY' || v === 'AUDIT'
            ? null
            : ['REMORA_ERR_POLICY_BAD_ACTION', `action "${v}" is not one of ALLOW, DENY, AUDIT`],
      ),
    )
    .optional(),
  rules: z.array(ruleSchema).min(1).optional(),
  provider: unsupported('REMORA_ERR_POLICY_CUSTOM_UNSUPPORTED', 'provider is only used by action CUSTOM, which remora does not support'),
  targetRef: unsupported('REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', targetRefMessage),
  targetRefs: unsupported('REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', targetRefMessage),
})

const requestAuthnSpecSchema = createRequestAuthnSpecSchema(selectorSchema)

const mtlsMode = z
  .string()
  .superRefine(
    refineWith((v) =>
      ['STRICT', 'PERMISSIVE', 'DISABLE', 'UNSET'].includes(v) ? null : ['REMORA_ERR_POLICY_BAD_MTLS_MODE', `mode "${v}" is not one of STRICT, PERMISSIVE, DISABLE, UNSET`],
    ),
  )

const peerSpecSchema = z
  .strictObject({
    selector: selectorSchema.optional(),
    mtls: z.strictObject({ mode: mtlsMode.optional() }).optional(),
    portLevelMtls: z.record(z.string(), z.strictObject({ mode: mtlsMode.optional() })).optional(),
    targetRef: unsupported('REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', targetRefMessage),
    targetRefs: unsupported('REMORA_ERR_POLICY_TARGET_REF_UNSUPPORTED', targetRefMessage),
  })
  .superRefine((s, ctx) => {
    if (!s.portLevelMtls) return
    const keys = Object.keys(s.portLevelMtls)
    if (keys.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'portLevelMtls, if set, must have at least one port', path: ['portLevelMtls'], params: { code: 'REMORA_ERR_POLICY_EMPTY_LIST' } })
    }
    for (const k of keys) {
      if (parsePort(k, 1) === null) {
        ctx.addIssue({ code: 'custom', message: `port "${k}" must be in 1..65535`, path: ['portLevelMtls', k], params: { code: 'REMORA_ERR_POLICY_BAD_PORT' } })
      }
    }
    if (Object.keys(s.selector?.matchLabels ?? {}).length === 0) {
      ctx.addIssue({
        code: 'custom',
        message: 'portLevelMtls needs a selector: a mesh- or namespace-wide PeerAuthentication cannot have port-level mTLS (as in Istio)',
        path: ['portLevelMtls'],
        params: { code: 'REMORA_ERR_POLICY_PORT_MTLS_NO_SELECTOR' },
      })
    }
  })

// ---------------------------------------------------------------------------------------------
// Issue mapping

const KNOWN_FIELDS = [
  'apiVersion',
  'kind',
  'metadata',
  'spec',
  'status',
  'name',
  'namespace',
  'annotations',
  'labels',
  'creationTimestamp',
  'selector',
  'matchLabels',
  'action',
  'rules',
  'from',
  'to',
  'when',
  'source',
  'operation',
  'key',
  'values',
  'notValues',
  'mtls',
  'mode',
  'portLevelMtls',
  ...SOURCE_FIELDS,
  ...OPERATION_FIELDS,
  ...REQUEST_AUTHN_FIELDS,
]

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!
    dp[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1))
      prev = tmp
    }
  }
  return dp[b.length]!
}

function suggest(key: string): string {
  let best: string | null = null
  let bestD = 3
  for (const k of KNOWN_FIELDS) {
    const d = editDistance(key, k)
    if (d < bestD) {
      best = k
      bestD = d
    }
  }
  return best ? ` (did you mean "${best}"?)` : ''
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<PropertyKey, unknown>)[p]
  }
  return cur
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  return `${typeof v} ${JSON.stringify(v)}`
}

function mapIssues(issues: readonly z.core.$ZodIssue[], root: unknown, base: readonly PropertyKey[]): PolicyIssue[] {
  const out: PolicyIssue[] = []
  for (const iss of issues) {
    const full = [...base, ...iss.path]
    const p = formatPath(full)
    switch (iss.code) {
      case 'custom': {
        const code = (iss.params as { code?: PolicyIssueCode } | undefined)?.code ?? 'REMORA_ERR_POLICY_WRONG_TYPE'
        out.push(policyIssue(code, p, iss.message))
        break
      }
      case 'unrecognized_keys':
        for (const k of iss.keys) out.push(policyIssue('REMORA_ERR_POLICY_UNKNOWN_FIELD', formatPath([...full, k]), `unknown field "${k}"${suggest(k)}`))
        break
      case 'invalid_type': {
        const actual = valueAt(root, full)
        if (actual === undefined) out.push(policyIssue('REMORA_ERR_POLICY_MISSING_FIELD', p, `${String(full[full.length - 1])} is required`))
        else {
          const hint = iss.expected === 'string' && (typeof actual === 'number' || typeof actual === 'boolean') ? ` (quote it: "${String(actual)}")` : ''
          const expected = iss.expected === 'array' ? 'a list' : iss.expected === 'object' || iss.expected === 'record' ? 'a mapping' : `a ${iss.expected}`
          out.push(policyIssue('REMORA_ERR_POLICY_WRONG_TYPE', p, `expected ${expected}, got ${describe(actual)}${hint}`))
        }
        break
      }
      case 'too_small':
        if (iss.origin === 'string') out.push(policyIssue('REMORA_ERR_POLICY_EMPTY_VALUE', p, 'empty string is not allowed'))
        else {
          const field = String(full[full.length - 1])
          const extra =
            field === 'rules' ? ': omit rules to match nothing, or write rules: [{}] to match every request' : ': omit the field or give at least one value'
          out.push(policyIssue('REMORA_ERR_POLICY_EMPTY_LIST', p, `${field} is an empty list${extra}`))
        }
        break
      default:
        out.push(policyIssue('REMORA_ERR_POLICY_WRONG_TYPE', p, iss.message))
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// validate()

const TOP_LEVEL = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status'])

export function validate(doc: unknown, opts: ValidateOptions = {}): ValidationResult {
  const errors: PolicyIssue[] = []
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    errors.push(policyIssue('REMORA_ERR_POLICY_NOT_OBJECT', '', `a policy document must be a mapping, got ${describe(doc)}`))
    return { policy: null, errors, warnings: [] }
  }
  const o = doc as Record<string, unknown>
  for (const k of Object.keys(o)) {
    if (!TOP_LEVEL.has(k)) errors.push(policyIssue('REMORA_ERR_POLICY_UNKNOWN_FIELD', formatPath([k]), `unknown field "${k}"${suggest(k)}`))
  }
  if (o.apiVersion === undefined) errors.push(policyIssue('REMORA_ERR_POLICY_MISSING_FIELD', 'apiVersion', 'apiVersion is required'))
  else if (typeof o.apiVersion !== 'string' || !(API_VERSIONS as readonly string[]).includes(o.apiVersion)) {
    errors.push(policyIssue('REMORA_ERR_POLICY_API_VERSION', 'apiVersion', `apiVersion ${describe(o.apiVersion)} is not one of ${API_VERSIONS.join(', ')}`))
  }
  let specSchema: z.ZodType | null = null
  if (o.kind === undefined) errors.push(policyIssue('REMORA_ERR_POLICY_MISSING_FIELD', 'kind', 'kind is required'))
  else if (o.kind === 'AuthorizationPolicy') specSchema = authzSpecSchema
  else if (o.kind === 'PeerAuthentication') specSchema = peerSpecSchema
  else if (o.kind === 'RequestAuthentication') specSchema = requestAuthnSpecSchema
  else {
    errors.push(policyIssue('REMORA_ERR_POLICY_KIND', 'kind', `kind ${describe(o.kind)} is not one of AuthorizationPolicy, PeerAuthentication, RequestAuthentication`))
  }

  if (o.metadata === undefined) errors.push(policyIssue('REMORA_ERR_POLICY_MISSING_FIELD', 'metadata', 'metadata is required'))
  else {
    const r = metadataSchema.safeParse(o.metadata)
    if (!r.success) errors.push(...mapIssues(r.error.issues, doc, ['metadata']))
  }
  if (specSchema) {
    if (o.spec === undefined) {
      const hint = o.kind === 'AuthorizationPolicy' ? ' (write `spec: {}` for an ALLOW policy that matches nothing)' : ''
      errors.push(policyIssue('REMORA_ERR_POLICY_MISSING_FIELD', 'spec', `spec is required${hint}`))
    } else {
      const r = specSchema.safeParse(o.spec)
      if (!r.success) errors.push(...mapIssues(r.error.issues, doc, ['spec']))
    }
  }
  if (errors.length > 0) return { policy: null, errors, warnings: [] }
  const policy = doc as PolicyDocument
  return { policy, errors, warnings: warningsFor(policy, opts) }
}

// ---------------------------------------------------------------------------------------------
// Warnings: only computed for documents without errors, so the types can be trusted.

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false
  return true
}

function warningsFor(policy: PolicyDocument, opts: ValidateOptions): PolicyIssue[] {
  const w: PolicyIssue[] = []
  const root = opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE
  const ns = policy.metadata.namespace
  const annotations = policy.metadata.annotations ?? {}
  for (const a of DRY_RUN_ANNOTATIONS) {
    const v = annotations[a]
    if (v === undefined) continue
    const p = formatPath(['metadata', 'annotations', a])
    if (policy.kind !== 'AuthorizationPolicy') {
      w.push(policyIssue('REMORA_WARN_POLICY_DRY_RUN_IGNORED', p, `${a} has no effect on ${policy.kind}: it is always enforced`))
    } else if (v !== 'true' && v !== 'false') {
      const b = parseGoBool(v)
      w.push(
        policyIssue(
          'REMORA_WARN_POLICY_DRY_RUN_VALUE',
          p,
          `${a}: "${v}" is read as ${b === true ? '"true" (dry run)' : '"false": the policy is ENFORCED'}; write "true" or "false"`,
        ),
      )
    }
  }
  const labels = policy.spec.selector?.matchLabels
  if (policy.spec.selector && Object.keys(labels ?? {}).length === 0) {
    w.push(policyIssue('REMORA_WARN_POLICY_EMPTY_SELECTOR', 'spec.selector', 'selector without labels: the policy applies to every workload in its scope'))
  } else if (labels && opts.knownWorkloads) {
    const inScope = opts.knownWorkloads.filter((wl) => ns === root || wl.namespace === ns)
    if (!inScope.some((wl) => selects(labels, wl.labels))) {
      const sel = Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
      w.push(
        policyIssue('REMORA_WARN_POLICY_SELECTOR_NO_MATCH', 'spec.selector.matchLabels', `selector ${sel} matches no known workload${ns === root ? '' : ` in namespace ${ns}`}`),
      )
    }
  }
  if (policy.kind === 'PeerAuthentication') {
    if (ns === root && Object.keys(labels ?? {}).length > 0) {
      w.push(
        policyIssue(
          'REMORA_WARN_POLICY_ROOT_SELECTOR_IGNORED',
          'spec.selector',
          `a PeerAuthentication with a selector in the root namespace (${root}) is ignored; remove the selector for a mesh-wide policy`,
        ),
      )
    }
    return w
  }
  if (policy.kind === 'RequestAuthentication') return w
  authzWarnings(policy, opts, w)
  return w
}

function authzWarnings(policy: AuthorizationPolicy, opts: ValidateOptions, w: PolicyIssue[]): void {
  if (policy.spec.action === 'DENY' && !policy.spec.rules) {
    w.push(policyIssue('REMORA_WARN_POLICY_DENY_NO_RULES', 'spec.rules', 'a DENY policy without rules never denies anything; add rules: [{}] to deny every request'))
  }
  const tds = opts.trustDomains && opts.trustDomains.length > 0 ? new Set(opts.trustDomains) : null
  const mode = opts.pathNormalization ?? DEFAULT_PATH_NORMALIZATION
  const checkPrincipals = (values: readonly string[] | undefined, base: PropertyKey[]) => {
    if (!tds || !values) return
    values.forEach((v, i) => {
      const td = principalTrustDomain(v)
      if (td !== null && !tds.has(td)) {
        w.push(policyIssue('REMORA_WARN_POLICY_TRUST_DOMAIN', formatPath([...base, i]), `"${v}": trust domain "${td}" is not one of the mesh's (${[...tds].join(', ')})`))
      }
    })
  }
  policy.spec.rules?.forEach((rule, r) => {
    rule.from?.forEach((f, i) => {
      const base = ['spec', 'rules', r, 'from', i, 'source']
      checkPrincipals(f.source.principals, [...base, 'principals'])
      checkPrincipals(f.source.notPrincipals, [...base, 'notPrincipals'])
    })
    rule.to?.forEach((t, i) => {
      const base = ['spec', 'rules', r, 'to', i, 'operation']
      for (const field of ['methods', 'notMethods'] as const) {
        t.operation[field]?.forEach((m, j) => {
          if (m !== m.toUpperCase()) {
            w.push(policyIssue('REMORA_WARN_POLICY_METHOD_CASE', formatPath([...base, field, j]), `method "${m}" is matched case-sensitively; HTTP methods are upper case`))
          }
        })
      }
      for (const field of ['paths', 'notPaths'] as const) {
        t.operation[field]?.forEach((v, j) => {
          if (containsPathTemplate(v)) return
          const p = parsePattern(v)
          if (p.kind !== 'exact' && p.kind !== 'prefix') return
          const n = normalizePath(p.value, mode)
          // A prefix may legitimately end in the middle of a segment ("/api/v" or "/a/."), so only
          // the part up to its last "/" must be stable under normalization.
          const probe = p.kind === 'prefix' ? p.value.slice(0, p.value.lastIndexOf('/') + 1) : p.value
          const np = p.kind === 'prefix' ? normalizePath(probe, mode) : n
          if (!np.ok || np.path !== probe) {
            w.push(
              policyIssue(
                'REMORA_WARN_POLICY_PATH_NOT_NORMALIZED',
                formatPath([...base, field, j]),
                `"${v}" is not a normalized path (${mode}${np.ok ? ` gives "${np.path}"` : `: ${np.reason}`}), so it can never match a request`,
              ),
            )
          }
        })
      }
    })
    rule.when?.forEach((c, i) => {
      if (c.key === 'source.principal') {
        checkPrincipals(c.values, ['spec', 'rules', r, 'when', i, 'values'])
        checkPrincipals(c.notValues, ['spec', 'rules', r, 'when', i, 'notValues'])
      }
    })
  })
}

// ---------------------------------------------------------------------------------------------
// validateDocuments(): files → policies + issues naming file and document.

export interface PolicySource {
  readonly source: string
  readonly text: string
}

export interface DocumentsValidation {
  /** Documents without errors (in input order). A caller applying a set must refuse it when `errors` is not empty. */
  readonly policies: PolicyDocument[]
  readonly errors: PolicyIssue[]
  readonly warnings: PolicyIssue[]
}

export function validateDocuments(sources: readonly PolicySource[], opts: ValidateOptions = {}): DocumentsValidation {
  const policies: PolicyDocument[] = []
  const errors: PolicyIssue[] = []
  const warnings: PolicyIssue[] = []
  const seen = new Map<string, string>()
  for (const { source, text } of sources) {
    const parsed = parseDocuments(text, source)
    errors.push(...parsed.errors)
    for (const d of parsed.docs) {
      const where = { source, doc: d.index, line: d.line }
      const r = validate(d.value, opts)
      errors.push(...r.errors.map((i) => ({ ...i, ...where })))
      warnings.push(...r.warnings.map((i) => ({ ...i, ...where })))
      if (!r.policy) continue
      const id = `${r.policy.kind} ${r.policy.metadata.namespace}/${r.policy.metadata.name}`
      const first = seen.get(id)
      if (first !== undefined) {
        errors.push({ ...policyIssue('REMORA_ERR_POLICY_DUPLICATE', 'metadata.name', `${id} is already defined at ${first}`), ...where })
        continue
      }
      seen.set(id, `${source}#${d.index}`)
      policies.push(r.policy)
    }
  }
  return { policies, errors, warnings }
}
