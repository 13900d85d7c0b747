// Text → documents. YAML (multi-document, `---`) and JSON (an object, or an array of objects) go
// through the same YAML 1.2 parser so that both get line numbers; a Kubernetes `kind: List`
// (what `kubectl get … -o yaml` prints) is expanded into its items.
import { LineCounter, parseAllDocuments, isMap, isSeq, type Node } from 'yaml'
import { policyIssue, type PolicyIssue } from './errors.js'

export interface ParsedDocument {
  /** File (or other origin) the text came from. */
  readonly source: string
  /** 0-based index among the documents of this source, after List expansion. */
  readonly index: number
  /** 1-based line where the document starts. */
  readonly line: number
  readonly value: unknown
}

export interface ParseResult {
  readonly docs: ParsedDocument[]
  readonly errors: PolicyIssue[]
}

function isKubeList(v: unknown): v is { items: unknown[] } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  return typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)
}

export function parseDocuments(text: string, source: string): ParseResult {
  const lineCounter = new LineCounter()
  const docs: ParsedDocument[] = []
  const errors: PolicyIssue[] = []
  const lineOf = (offset: number | undefined): number => (offset === undefined ? 1 : lineCounter.linePos(offset).line)
  const all = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false })
  const list = Array.isArray(all) ? all : [all]
  for (const doc of list) {
    const e = doc.errors[0]
    if (e) {
      // One error per document: the rest are usually consequences of the first.
      const line = e.linePos?.[0]?.line ?? lineOf(e.pos[0])
      errors.push({ ...policyIssue('REMORA_ERR_POLICY_PARSE', '', `line ${line}: ${e.message.split('\n')[0]}`), source, line })
      continue
    }
    const contents = doc.contents as Node | null
    if (contents === null || contents === undefined) continue // empty document (a trailing `---`)
    let value: unknown
    try {
      value = doc.toJS({ maxAliasCount: 100 })
    } catch (err) {
      const line = lineOf(contents.range?.[0])
      errors.push({ ...policyIssue('REMORA_ERR_POLICY_PARSE', '', `line ${line}: ${(err as Error).message}`), source, line })
      continue
    }
    if (value === null || value === undefined) continue
    const start = lineOf(contents.range?.[0])
    // A top-level JSON/YAML array of documents, or a Kubernetes List: one document per item.
    if (Array.isArray(value) && isSeq(contents)) {
      value.forEach((item, i) => {
        const node = contents.items[i] as Node | undefined
        docs.push({ source, index: docs.length, line: lineOf(node?.range?.[0]) || start, value: item })
      })
      continue
    }
    if (isKubeList(value) && isMap(contents)) {
      const itemsNode = contents.get('items', true) as Node | undefined
      value.items.forEach((item, i) => {
        const node = isSeq(itemsNode) ? (itemsNode.items[i] as Node | undefined) : undefined
        docs.push({ source, index: docs.length, line: lineOf(node?.range?.[0]) || start, value: item })
      })
      continue
    }
    docs.push({ source, index: docs.length, line: start, value })
  }
  return { docs, errors }
}
