/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects of any shape, read as JSON in tests */
// A small kustomize resolver over the real files, for machines without kubectl: resources (files
// and directories with their own kustomization.yaml), namespace, labels/commonLabels and images,
// the subset manifests/ uses. test/system/kustomize.test.ts checks it against `kubectl kustomize`.
import { readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { parseAllDocuments, parse as parseYaml } from 'yaml'

export type K8sObject = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown } }

/** Kinds without a namespace (kustomize's namespace transformer leaves them alone). */
export const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
])

interface Kustomization {
  resources?: string[]
  namespace?: string
  commonLabels?: Record<string, string>
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[]
  images?: { name: string; newName?: string; newTag?: string }[]
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'commonLabels', 'labels', 'images'])

function loadFile(path: string): K8sObject[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${path}: ${d.errors[0]!.message}`)
      return d.toJS() as K8sObject | null
    })
    .filter((o): o is K8sObject => o !== null)
}

function podTemplates(o: K8sObject): Record<string, any>[] {
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind)) return [o.spec?.template].filter(Boolean)
  if (o.kind === 'CronJob') return [o.spec?.jobTemplate?.spec?.template].filter(Boolean)
  return []
}

export function kustomizeBuild(dir: string): K8sObject[] {
  const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization
  for (const key of Object.keys(k)) if (!SUPPORTED.has(key)) throw new Error(`${dir}/kustomization.yaml: "${key}" is not supported by this resolver`)
  let objects: K8sObject[] = []
  for (const r of k.resources ?? []) {
    const p = join(dir, r)
    objects.push(...(statSync(p).isDirectory() ? kustomizeBuild(p) : loadFile(p)))
  }
  if (k.namespace) {
    for (const o of objects) {
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace
      // kustomize also moves the ServiceAccount subjects of bindings into the namespace.
      if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
        for (const s of o.subjects ?? []) if (s.kind === 'ServiceAccount' && (s.namespace === undefined || s.namespace === 'default')) s.namespace = k.namespace
      }
    }
  }
  const labelSets = [...(k.labels ?? []), ...(k.commonLabels ? [{ pairs: k.commonLabels, includeSelectors: true, includeTemplates: true }] : [])]
  for (const set of labelSets) {
    for (const o of objects) {
      o.metadata.labels = { ...(o.metadata.labels ?? {}), ...set.pairs }
      if (set.includeTemplates || set.includeSelectors) for (const t of podTemplates(o)) t.metadata = { ...(t.metadata ?? {}), labels: { ...(t.metadata?.labels ?? {}), ...set.pairs } }
      if (set.includeSelectors) {
        if (o.spec?.selector?.matchLabels) o.spec.selector.matchLabels = { ...o.spec.selector.matchLabels, ...set.pairs }
        if (o.kind === 'Service' && o.spec?.selector) o.spec.selector = { ...o.spec.selector, ...set.pairs }
      }
    }
  }
  for (const img of k.images ?? []) {
    for (const o of objects) {
      for (const t of podTemplates(o)) {
        for (const c of [...(t.spec?.initContainers ?? []), ...(t.spec?.containers ?? [])]) {
          const [name, tag] = String(c.image).split(':')
          if (name === img.name) c.image = `${img.newName ?? name}${img.newTag ? `:${img.newTag}` : tag ? `:${tag}` : ''}`
        }
      }
    }
  }
  objects = objects.map((o) => structuredClone(o))
  return objects
}

export const repoDir = (...p: string[]): string => join(dirname(new URL(import.meta.url).pathname), '..', '..', ...p)
