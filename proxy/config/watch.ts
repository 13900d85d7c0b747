import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'

/**
 * Watches policy files and directories and calls `onChange` (debounced) after any edit. Files are
 * watched through their directory so that editors that replace a file (rename over it) and
 * Kubernetes ConfigMap symlink swaps are seen too.
 */
export async function watchPolicyFiles(paths: readonly string[], onChange: () => void, debounceMs = 50): Promise<{ close(): Promise<void> }> {
  const watchers: FSWatcher[] = []
  let timer: NodeJS.Timeout | null = null
  const fire = (): void => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      onChange()
    }, debounceMs)
  }
  for (const p of paths) {
    const st = await stat(p).catch(() => null)
    if (st?.isDirectory()) {
      watchers.push(watch(p, { recursive: true }, fire))
    } else {
      const name = basename(p)
      watchers.push(
        watch(dirname(p), (_ev, file) => {
          if (file === null || file === name || String(file).startsWith('..')) fire()
        }),
      )
    }
  }
  for (const w of watchers) w.on('error', () => {})
  return {
    async close() {
      if (timer) clearTimeout(timer)
      for (const w of watchers) w.close()
    },
  }
}
