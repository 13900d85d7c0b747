import { watch, type FSWatcher } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

async function subdirectories(root: string): Promise<string[]> {
  const out = [root]
  const entries = await readdir(root, { withFileTypes: true }).catch(() => [])
  for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) out.push(...(await subdirectories(join(root, e.name))))
  return out
}

/**
 * Watches policy files and directories and calls `onChange` (debounced) after any edit. Only
 * directories are watched (inotify on a directory reports edits, creations and renames of its
 * entries), so editors that replace a file and ConfigMap symlink swaps are seen too; Node's
 * recursive mode is avoided because on Linux it watches file inodes that a rename leaves behind.
 */
export async function watchPolicyFiles(paths: readonly string[], onChange: () => void, debounceMs = 50): Promise<{ close(): Promise<void> }> {
  const watchers = new Map<string, FSWatcher>()
  let timer: NodeJS.Timeout | null = null
  let closed = false
  const watchDir = (dir: string, filter?: string): void => {
    const key = filter ? `${dir}\0${filter}` : dir
    if (watchers.has(key)) return
    try {
      const w = watch(dir, (_ev, file) => {
        if (filter && file !== null && file !== filter && !String(file).startsWith('..')) return
        fire()
      })
      w.on('error', () => {})
      watchers.set(key, w)
    } catch {
      /* a directory that vanished: the next reload reports the missing path */
    }
  }
  const rescan = async (): Promise<void> => {
    for (const p of paths) {
      const st = await stat(p).catch(() => null)
      if (st?.isDirectory()) for (const d of await subdirectories(p)) watchDir(d)
      else watchDir(dirname(p), basename(p))
    }
  }
  const fire = (): void => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      if (closed) return
      void rescan() // new subdirectories join the watch
      onChange()
    }, debounceMs)
  }
  await rescan()
  return {
    async close() {
      closed = true
      if (timer) clearTimeout(timer)
      for (const w of watchers.values()) w.close()
    },
  }
}
