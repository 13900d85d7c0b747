// RFC 6902 JSON Patch from two JSON values: what the webhook answers. Objects are diffed member by
// member (so unrelated fields are never rewritten); arrays and scalars that differ are replaced
// whole, which is exact because the API server applies the patch to the object it sent us.

export type JsonPatchOp =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }

/** A JSON Pointer segment (RFC 6901): `~` → `~0`, `/` → `~1` (annotation keys contain `/`). */
export function pointerSegment(s: string): string {
  return s.replaceAll('~', '~0').replaceAll('/', '~1')
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => equal(x, b[i]))
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined)
    const kb = Object.keys(b).filter((k) => b[k] !== undefined)
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]))
  }
  return false
}

export function createJsonPatch(before: unknown, after: unknown, path = ''): JsonPatchOp[] {
  if (equal(before, after)) return []
  if (!isObject(before) || !isObject(after)) return [{ op: 'replace', path, value: after }]
  const ops: JsonPatchOp[] = []
  for (const k of Object.keys(before)) {
    if (before[k] !== undefined && (!Object.hasOwn(after, k) || after[k] === undefined)) ops.push({ op: 'remove', path: `${path}/${pointerSegment(k)}` })
  }
  for (const [k, v] of Object.entries(after)) {
    if (v === undefined) continue
    const p = `${path}/${pointerSegment(k)}`
    if (!Object.hasOwn(before, k) || before[k] === undefined) ops.push({ op: 'add', path: p, value: v })
    else ops.push(...createJsonPatch(before[k], v, p))
  }
  return ops
}
