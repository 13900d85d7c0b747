// Reads policy files for the sidecar (policies.files) and the CLI (-f): the one place where
// policy text comes from the file system; everything after this is the pure proxy/policy leaf.
import { readdir, readFile, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { RemoraError } from '../errors/index.js'

export interface PolicySourceText {
  /** The file's path as given (or joined under the given directory). */
  readonly source: string
  readonly text: string
}

export const POLICY_FILE_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json']

/** A policy file or folder that cannot be read. */
export class PolicyFilesError extends RemoraError<'REMORA_ERR_POLICY_FILES'> {
  readonly path: string
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('REMORA_ERR_POLICY_FILES', 400, `${path}: ${message}`, options)
    this.path = path
  }
}

/**
 * Files named directly are read whatever their extension; directories are walked recursively for
 * `.yaml`, `.yml` and `.json`, skipping entries whose name starts with "." (a Kubernetes
 * ConfigMap mount has `..data` and `..<timestamp>` links that would duplicate every file).
 * The result is sorted by path, so that the same tree always gives the same order. A missing or
 * unreadable path rejects with a PolicyFilesError (fail closed: no partial policy set).
 */
export async function readPolicySources(paths: readonly string[]): Promise<PolicySourceText[]> {
  const files: string[] = []
  for (const p of paths) {
    let st
    try {
      st = await stat(p)
    } catch (err) {
      throw new PolicyFilesError(p, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message, { cause: err })
    }
    if (st.isDirectory()) files.push(...(await walk(p)).sort())
    else files.push(p)
  }
  const seen = new Set<string>()
  const out: PolicySourceText[] = []
  for (const f of files) {
    if (seen.has(f)) continue
    seen.add(f)
    try {
      out.push({ source: f, text: await readFile(f, 'utf8') })
    } catch (err) {
      throw new PolicyFilesError(f, (err as Error).message, { cause: err })
    }
  }
  return out
}

async function walk(dir: string): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    throw new PolicyFilesError(dir, (err as Error).message, { cause: err })
  }
  const out: string[] = []
  for (const e of entries) {
    if (e.name.startsWith('.')) continue
    const full = join(dir, e.name)
    let isDir = e.isDirectory()
    let isFile = e.isFile()
    if (e.isSymbolicLink()) {
      try {
        const st = await stat(full)
        isDir = st.isDirectory()
        isFile = st.isFile()
      } catch {
        continue // a dangling link is not a policy file
      }
    }
    if (isDir) out.push(...(await walk(full)))
    else if (isFile && POLICY_FILE_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(full)
  }
  return out
}
