// `kubectl kustomize` (kustomize built into kubectl) renders manifests/base and manifests/examples,
// and renders them exactly as the resolver the unit tests use (test/helpers/kustomize.ts), so the
// shape checks in test/unit/manifests.test.ts hold for what `kubectl apply -k` sends.
import { execFileSync, spawnSync } from 'node:child_process'
import { parseAllDocuments } from 'yaml'
import { describe, expect, test } from 'vitest'
import { kustomizeBuild, repoDir, type K8sObject } from '../helpers/kustomize.js'

function kubectl(): string {
  const r = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) {
    throw new Error(
      'kubectl is not installed (needed for `kubectl kustomize`): install a kubectl with built-in kustomize ' +
        '(Debian: `apt-get install kubernetes-client`, or the upstream kubectl binary)',
    )
  }
  return 'kubectl'
}

const key = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`
const sorted = (objs: K8sObject[]): K8sObject[] => [...objs].sort((a, b) => (key(a) < key(b) ? -1 : 1))

describe('kubectl kustomize', () => {
  for (const dir of ['base', 'examples']) {
    test(`manifests/${dir} renders, and exactly as our resolver renders it`, () => {
      const out = execFileSync(kubectl(), ['kustomize', repoDir('manifests', dir)], { encoding: 'utf8' })
      const rendered = parseAllDocuments(out).map((d) => d.toJS() as K8sObject)
      expect(rendered.length).toBeGreaterThan(5)
      expect(sorted(rendered)).toEqual(sorted(kustomizeBuild(repoDir('manifests', dir))))
    })
  }
})
