// The part of the API server's CRD validation that decides "accepted or not" for our schemas:
// types, properties (an unknown field is an error, as with `kubectl apply --validate=strict` and
// server-side field validation), required, items, enum, min/max constraints, additionalProperties.
// Plus the structural-schema rules a CRD must follow to be accepted at all.

export interface Schema {
  type?: string
  properties?: Record<string, Schema>
  additionalProperties?: Schema | boolean
  items?: Schema
  required?: string[]
  enum?: unknown[]
  minItems?: number
  minLength?: number
  maxLength?: number
  minProperties?: number
  maxProperties?: number
  format?: string
  description?: string
  'x-kubernetes-preserve-unknown-fields'?: boolean
  'x-kubernetes-validations'?: unknown[]
  [k: string]: unknown
}

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v

export function validateValue(schema: Schema, value: unknown, path = ''): string[] {
  const errs: string[] = []
  const at = path || '(root)'
  if (schema.type) {
    const t = typeOf(value)
    const ok = t === schema.type || (schema.type === 'number' && t === 'integer')
    if (!ok) return [`${at}: expected ${schema.type}, got ${t}`]
  }
  if (schema.enum && !schema.enum.includes(value)) errs.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`)
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) errs.push(`${at}: shorter than ${schema.minLength}`)
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errs.push(`${at}: longer than ${schema.maxLength}`)
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errs.push(`${at}: fewer than ${schema.minItems} items`)
    if (schema.items) value.forEach((v, i) => errs.push(...validateValue(schema.items!, v, `${path}[${i}]`)))
  }
  if (typeOf(value) === 'object') {
    const o = value as Record<string, unknown>
    const keys = Object.keys(o)
    if (schema.minProperties !== undefined && keys.length < schema.minProperties) errs.push(`${at}: fewer than ${schema.minProperties} properties`)
    if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) errs.push(`${at}: more than ${schema.maxProperties} properties`)
    for (const r of schema.required ?? []) if (!(r in o)) errs.push(`${path ? `${path}.` : ''}${r}: Required value`)
    if (!schema['x-kubernetes-preserve-unknown-fields']) {
      for (const k of keys) {
        const p = path ? `${path}.${k}` : k
        const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined)
        if (sub) errs.push(...validateValue(sub, o[k], p))
        // metadata is ObjectMeta, which the API server validates itself (`type: object` here).
        else if (path !== 'metadata') errs.push(`${p}: unknown field "${k}"`)
      }
    }
  }
  return errs
}

/** Kubernetes' structural-schema rules (apiextensions v1): every node typed, no mixing of properties and additionalProperties. */
export function structuralProblems(schema: Schema, path = 'openAPIV3Schema'): string[] {
  const out: string[] = []
  if (!schema.type && !schema['x-kubernetes-preserve-unknown-fields'] && !schema['x-kubernetes-int-or-string']) out.push(`${path}: type is required`)
  if (schema.properties && schema.additionalProperties !== undefined && schema.additionalProperties !== false) out.push(`${path}: properties and additionalProperties are mutually exclusive`)
  if (schema.type === 'array' && !schema.items) out.push(`${path}: items is required for an array`)
  for (const [k, s] of Object.entries(schema.properties ?? {})) out.push(...structuralProblems(s, `${path}.properties[${k}]`))
  if (typeof schema.additionalProperties === 'object') out.push(...structuralProblems(schema.additionalProperties, `${path}.additionalProperties`))
  if (schema.items) out.push(...structuralProblems(schema.items, `${path}.items`))
  return out
}
