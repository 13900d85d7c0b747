import { parseAllDocuments, stringify } from 'yaml'
import type { InjectConfig } from './config.js'
import { InjectError, isInjectError } from './errors.js'
import { injectPod, type InjectOutcome, type PodLike, type ServiceLike } from './pod.js'

// `remora inject -f`: every pod template in a (multi-document) manifest gets the sidecar, like
// `istioctl kube-inject`. Kinds without a pod template pass through unchanged. The Services in the
// same manifests declare the protocols of the ports they select (appProtocol, port names).

/** Where each kind keeps its pod template. */
const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
}

export interface DocumentReport {
  readonly index: number
  readonly kind: string
  readonly name: string
  /** injected, or why not (opted out, already injected, no pod template…). */
  readonly result: string
  readonly warnings: readonly string[]
}

export interface ManifestInjection {
  readonly text: string
  readonly reports: readonly DocumentReport[]
}

type Obj = Record<string, unknown>
const isObject = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

function getAt(o: Obj, path: readonly string[]): unknown {
  let cur: unknown = o
  for (const p of path) cur = isObject(cur) ? cur[p] : undefined
  return cur
}

function setAt(o: Obj, path: readonly string[], value: unknown): Obj {
  if (path.length === 0) return value as Obj
  const [head, ...rest] = path as [string, ...string[]]
  return { ...o, [head]: setAt((o[head] as Obj) ?? {}, rest, value) }
}

/** The Services among the objects (and `List` items), each with its namespace. */
function servicesIn(objs: readonly unknown[]): ServiceLike[] {
  const out: ServiceLike[] = []
  for (const o of objs) {
    if (!isObject(o)) continue
    if (o.kind === 'List' && Array.isArray(o.items)) out.push(...servicesIn(o.items))
    else if (o.kind === 'Service' && (o.apiVersion ?? 'v1') === 'v1') out.push(o as ServiceLike)
  }
  return out
}

/** One object (or a `List` of them) → the injected object and a report line per object. */
export function injectObject(obj: unknown, cfg: InjectConfig, index: number, services: readonly ServiceLike[] = []): { obj: unknown; reports: DocumentReport[] } {
  if (!isObject(obj)) throw new InjectError('REMORA_ERR_INJECT_BAD_DOCUMENT', `document ${index} is not a mapping`)
  const kind = typeof obj.kind === 'string' ? obj.kind : '?'
  const meta = isObject(obj.metadata) ? obj.metadata : {}
  const name = typeof meta.name === 'string' ? meta.name : '?'
  if (kind === 'List' && Array.isArray(obj.items)) {
    const reports: DocumentReport[] = []
    const items = obj.items.map((item) => {
      const r = injectObject(item, cfg, index, services)
      reports.push(...r.reports)
      return r.obj
    })
    return { obj: { ...obj, items }, reports }
  }
  const path = TEMPLATE_PATHS[kind]
  if (!path) return { obj, reports: [{ index, kind, name, result: 'no pod template, unchanged', warnings: [] }] }
  const template = getAt(obj, path)
  if (!isObject(template)) throw new InjectError('REMORA_ERR_INJECT_BAD_DOCUMENT', `${kind} ${name}: ${path.join('.') || '(root)'} is missing`)
  let outcome: InjectOutcome
  try {
    outcome = injectPod(template as PodLike, cfg, { namespace: typeof meta.namespace === 'string' ? meta.namespace : undefined, workloadName: name, services })
  } catch (err) {
    if (isInjectError(err)) throw err.within(`${kind} ${name}`)
    throw err
  }
  if (!outcome.injected) return { obj, reports: [{ index, kind, name, result: outcome.reason, warnings: outcome.warnings }] }
  return { obj: setAt(obj, path, outcome.pod), reports: [{ index, kind, name, result: 'injected', warnings: outcome.warnings }] }
}

/** A YAML (or JSON) stream → the injected YAML stream; documents keep their order. */
export function injectManifests(text: string, cfg: InjectConfig): ManifestInjection {
  const values: unknown[] = []
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new InjectError('REMORA_ERR_INJECT_BAD_DOCUMENT', `document ${values.length}: ${doc.errors[0]!.message}`)
    const value: unknown = doc.toJS()
    if (value === null || value === undefined) continue // an empty document between separators
    values.push(value)
  }
  const services = servicesIn(values)
  const out: string[] = []
  const reports: DocumentReport[] = []
  let index = 0
  for (const value of values) {
    const r = injectObject(value, cfg, index, services)
    reports.push(...r.reports)
    out.push(stringify(r.obj, { lineWidth: 0 }))
    index++
  }
  return { text: out.map((d) => `---\n${d}`).join(''), reports }
}
