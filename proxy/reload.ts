import { readPolicySources, watchPolicyFiles } from './config/index.js'
import { validateDocuments } from './policy/index.js'
import type { Logger, Sidecar } from './sidecar.js'

export interface PolicyReloadOptions {
  readonly trustDomain: string
  readonly rootNamespace: string
  readonly logger: Logger
  /** Called after each attempt (tests and the demo wait on it instead of sleeping). */
  readonly onResult?: (r: { ok: true; version: string } | { ok: false; errors: string[] }) => void
}

/**
 * Watches `policies.files` and swaps a re-validated policy set into the running sidecar. An
 * invalid or unreadable change keeps the last good set (fail closed on the old, known policy)
 * and says why in the log.
 */
export async function startPolicyReload(sidecar: Sidecar, paths: readonly string[], o: PolicyReloadOptions): Promise<{ close(): Promise<void> }> {
  const reload = async (): Promise<void> => {
    let errors: string[]
    try {
      const sources = await readPolicySources([...paths])
      const r = validateDocuments(sources, { trustDomains: [o.trustDomain], rootNamespace: o.rootNamespace })
      if (r.errors.length === 0) {
        const version = sidecar.applyPolicies(r.policies)
        o.onResult?.({ ok: true, version })
        return
      }
      errors = r.errors.map((e) => `${e.source ?? ''}${e.doc !== undefined ? `#${e.doc}` : ''} ${e.path}: ${e.message} (${e.code})`)
    } catch (err) {
      errors = [(err as Error).message]
    }
    sidecar.noteConfigRejected()
    o.logger.error({ event: 'config_rejected', version: sidecar.version, errors }, 'policy change rejected; keeping the last good policy set')
    o.onResult?.({ ok: false, errors })
  }
  return watchPolicyFiles(paths, () => void reload())
}
