import { createHash, randomBytes } from 'node:crypto'
import { renameSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { checkKey, underPrefix, type Store, type StoreEvent, type StoreWatch } from './types.js'

export interface FileStoreOptions {
  /** How often edits made by other processes (an editor, `git pull`) are picked up. Default 1 s. */
  readonly pollMs?: number
}

const hash = (v: string): string => createHash('sha256').update(v).digest('hex')

/**
 * A directory of files, one per key (`policies/shop/AuthorizationPolicy/allow.yaml`), for one
 * machine and for GitOps. Writes are atomic (temp file + rename), every file is 0600 and every
 * folder 0700 (the CA key lives here). Edits by other processes are found by a periodic scan that
 * compares content hashes, so an editor's save or a `git pull` reaches the watchers within pollMs.
 * The scan reads only the folders someone watches, and only the files whose size, mtime or inode
 * changed since it last looked: a thousand registrations cost a thousand stat calls, not a
 * thousand reads and hashes, every pollMs. `putAll` is all-or-none across a crash: a journal names
 * its temp files before the renames, and open() finishes a journal a crash left behind.
 */
export class FileStore implements Store {
  readonly kind = 'file' as const
  readonly url: string
  readonly #dir: string
  readonly #pollMs: number
  /** key → content hash, as last seen (by our own writes or by the scanner). */
  #known = new Map<string, string>()
  readonly #watchers = new Set<{ prefix: string; fn: (e: StoreEvent) => void }>()
  #timer: NodeJS.Timeout | null = null
  #scanning = false
  #scans = 0
  #closed = false
  /** Folders known to exist (0700): a put does not pay mkdir + chmod each time. */
  readonly #dirs = new Set<string>()
  /** Sequence of our own writes, per key: a scan ignores keys written while it was reading. */
  #writeSeq = 0
  readonly #lastWrite = new Map<string, number>()
  /** key → "size:mtimeNs:ino" when the scanner last read it. */
  readonly #stats = new Map<string, string>()
  /** list() calls under way, and a putAll about to rename: a list never sees part of a putAll. */
  #lists = 0
  #listsDone: (() => void)[] = []
  #committing: Promise<void> | null = null

  private constructor(dir: string, o: FileStoreOptions) {
    this.#dir = dir
    this.url = `file://${dir}`
    this.#pollMs = o.pollMs ?? 1000
  }

  static async open(dir: string, o: FileStoreOptions = {}): Promise<FileStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const s = new FileStore(dir, o)
    await chmod(dir, 0o700)
    await s.#recover()
    s.#known = new Map([...(await s.#readAll())].map(([k, v]) => [k, hash(v)]))
    return s
  }

  #path(key: string): string {
    return join(this.#dir, ...key.split('/'))
  }

  /** Every key's file (under `folder`, a key prefix ending with `/`, when given). */
  async #files(folder = ''): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    let entries
    try {
      entries = await readdir(folder ? join(this.#dir, ...folder.slice(0, -1).split('/')) : this.#dir, { withFileTypes: true, recursive: true })
    } catch {
      return out
    }
    for (const e of entries) {
      if (!e.isFile() || e.name.startsWith('.')) continue
      const rel = join(e.parentPath, e.name).slice(this.#dir.length + 1).split(sep)
      if (rel.some((s) => s.startsWith('.'))) continue
      const key = rel.join('/')
      try {
        checkKey(key)
      } catch {
        continue // a stray file name that is not a key
      }
      out.set(key, join(e.parentPath, e.name))
    }
    return out
  }

  /** Every key and its value (under `folder`, when given). */
  async #readAll(folder = ''): Promise<Map<string, string>> {
    const files = [...(await this.#files(folder))]
    const values: (string | null)[] = new Array(files.length).fill(null)
    // Reads overlap (libuv's pool has 4 threads): 100 policy files cost a few ms, not 100 round trips.
    let next = 0
    const worker = async (): Promise<void> => {
      for (let i = next++; i < files.length; i = next++) values[i] = await readFile(files[i]![1], 'utf8').catch(() => null) // null: deleted meanwhile
    }
    await Promise.all(Array.from({ length: Math.min(8, files.length) }, worker))
    const out = new Map<string, string>()
    files.forEach(([key], i) => values[i] !== null && out.set(key, values[i]!))
    return out
  }

  async get(key: string): Promise<string | null> {
    checkKey(key)
    try {
      return await readFile(this.#path(key), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null
      throw err
    }
  }

  async list(prefix: string): Promise<Map<string, string>> {
    checkKey(prefix, true)
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : ''
    while (this.#committing) await this.#committing
    this.#lists++
    let all
    try {
      all = await this.#readAll(folder)
    } finally {
      if (--this.#lists === 0) for (const done of this.#listsDone.splice(0)) done()
    }
    return new Map([...all].filter(([k]) => underPrefix(k, prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }

  async put(key: string, value: string): Promise<void> {
    checkKey(key)
    const path = this.#path(key)
    await this.#mkdirs(key)
    const tmp = join(path, '..', `.${randomBytes(6).toString('hex')}.tmp`)
    try {
      await writeFile(tmp, value, { mode: 0o600 })
    } catch (err) {
      // A folder removed behind our back (an operator, a checkout): forget the cache, retry once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      this.#dirs.clear()
      await this.#mkdirs(key)
      await writeFile(tmp, value, { mode: 0o600 })
    }
    await rename(tmp, path)
    this.#changed(key, value)
  }

  async putAll(entries: readonly (readonly [string, string])[]): Promise<void> {
    if (entries.length === 0) return
    for (const [k] of entries) checkKey(k)
    const moves: [tmp: string, path: string][] = []
    try {
      for (const [key, value] of entries) {
        await this.#mkdirs(key)
        const path = this.#path(key)
        const tmp = join(path, '..', `.${randomBytes(6).toString('hex')}.tmp`)
        await writeFile(tmp, value, { mode: 0o600 })
        moves.push([tmp, path])
      }
    } catch (err) {
      await Promise.all(moves.map(([tmp]) => rm(tmp, { force: true })))
      throw err
    }
    // The commit point: once the journal exists, a crash is finished by the next open().
    const rel = (p: string): string => p.slice(this.#dir.length + 1)
    const journal = join(this.#dir, `.journal-${randomBytes(6).toString('hex')}.json`)
    await writeFile(`${journal}.tmp`, JSON.stringify(moves.map(([t, p]) => [rel(t), rel(p)])), { mode: 0o600 })
    await rename(`${journal}.tmp`, journal)
    let release!: () => void
    const committing = new Promise<void>((r) => (release = r))
    while (this.#committing) await this.#committing
    this.#committing = committing
    try {
      if (this.#lists > 0) await new Promise<void>((r) => this.#listsDone.push(r))
      // Synchronous: nothing in this process runs between the first rename and the last.
      for (const [tmp, path] of moves) renameSync(tmp, path)
      for (const [key, value] of entries) this.#changed(key, value)
    } finally {
      this.#committing = null
      release()
    }
    await rm(journal, { force: true })
  }

  /** Finishes the putAll a crash interrupted after its commit point (renames what is left), drops uncommitted journals. */
  async #recover(): Promise<void> {
    for (const name of await readdir(this.#dir)) {
      const file = join(this.#dir, name)
      if (/^\.journal-[0-9a-f]+\.json\.tmp$/.test(name)) await rm(file, { force: true })
      if (!/^\.journal-[0-9a-f]+\.json$/.test(name)) continue
      const moves = JSON.parse(await readFile(file, 'utf8')) as [string, string][]
      for (const [tmp, path] of moves) {
        await rename(join(this.#dir, tmp), join(this.#dir, path)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err // ENOENT: renamed before the crash
        })
      }
      await rm(file, { force: true })
    }
  }

  async create(key: string, value: string): Promise<boolean> {
    checkKey(key)
    await this.#mkdirs(key)
    let fh
    try {
      fh = await open(this.#path(key), 'wx', 0o600)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    }
    try {
      await fh.writeFile(value)
    } finally {
      await fh.close()
    }
    this.#changed(key, value)
    return true
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key)
    try {
      await rm(this.#path(key))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
    this.#changed(key, null)
    return true
  }

  async #mkdirs(key: string): Promise<void> {
    const segs = key.split('/').slice(0, -1)
    let dir = this.#dir
    for (const s of segs) {
      dir = join(dir, s)
      if (this.#dirs.has(dir)) continue
      await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err
      })
      this.#dirs.add(dir)
    }
  }

  #changed(key: string, value: string | null, fromScan = false): void {
    if (!fromScan) this.#lastWrite.set(key, ++this.#writeSeq)
    const h = value === null ? null : hash(value)
    if (h === null ? !this.#known.has(key) : this.#known.get(key) === h) return
    if (h === null) this.#known.delete(key)
    else this.#known.set(key, h)
    this.#emit({ type: value === null ? 'delete' : 'put', key, value })
  }

  #emit(e: StoreEvent): void {
    for (const w of this.#watchers) if (underPrefix(e.key, w.prefix)) w.fn(e)
  }

  async #scan(): Promise<void> {
    if (this.#scanning || this.#closed) return
    this.#scanning = true
    try {
      // A key we wrote while the scan was reading may have been read before that write: the
      // scan's value would be stale, and reporting it would undo the write for the watchers.
      const from = this.#writeSeq
      const fresh = (k: string): boolean => (this.#lastWrite.get(k) ?? 0) <= from
      for (const folder of this.#watchedFolders()) {
        const seen = new Set<string>()
        for (const [key, file] of await this.#files(folder)) {
          seen.add(key)
          let st
          try {
            st = await stat(file, { bigint: true })
          } catch {
            continue // deleted meanwhile: the next scan reports it
          }
          const sig = `${st.size}:${st.mtimeNs}:${st.ino}`
          if (this.#stats.get(key) === sig) continue
          let text: string
          try {
            text = await readFile(file, 'utf8')
          } catch {
            continue
          }
          this.#stats.set(key, sig)
          if (fresh(key)) this.#changed(key, text, true)
        }
        for (const k of [...this.#known.keys()]) {
          if (underPrefix(k, folder) && !seen.has(k) && fresh(k)) {
            this.#stats.delete(k)
            this.#changed(k, null, true)
          }
        }
      }
    } finally {
      this.#scanning = false
      this.#scans++
    }
  }

  /** Scans completed so far: what a test waits on to know that a quiet period really was scanned. */
  get scans(): number {
    return this.#scans
  }

  /** The folders (key prefixes ending in `/`, or '' for all) that cover every watcher's prefix, without overlaps. */
  #watchedFolders(): string[] {
    const folders = [...new Set([...this.#watchers].map((w) => (w.prefix.includes('/') ? w.prefix.slice(0, w.prefix.lastIndexOf('/') + 1) : '')))].sort()
    return folders.filter((f, i) => !folders.slice(0, i).some((g) => f.startsWith(g)))
  }

  async watch(prefix: string, fn: (e: StoreEvent) => void): Promise<StoreWatch> {
    checkKey(prefix, true)
    const w = { prefix, fn }
    this.#watchers.add(w)
    if (!this.#timer && !this.#closed) {
      this.#timer = setInterval(() => void this.#scan().catch(() => {}), this.#pollMs)
      this.#timer.unref()
    }
    return {
      close: async () => {
        this.#watchers.delete(w)
        if (this.#watchers.size === 0 && this.#timer) {
          clearInterval(this.#timer)
          this.#timer = null
        }
      },
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.#watchers.clear()
  }
}
