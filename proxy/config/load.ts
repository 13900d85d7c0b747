import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { validateDocuments, type PolicyDocument } from '../policy/index.js'
import { buildCredentials, CredentialError, type Credentials } from '../tls/index.js'
import { readPolicySources } from './policy-files.js'
import { validateSidecarConfig, type SidecarConfig } from './schema.js'
import { hasCode } from '../errors/index.js'
import { ConfigError } from './errors.js'

export { ConfigError }

/** Sets `a.b.c` in a plain object (flags override file fields). */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let cur: Record<string, unknown> = obj
  for (const k of keys.slice(0, -1)) {
    const v = cur[k]
    if (typeof v !== 'object' || v === null || Array.isArray(v)) cur[k] = {}
    cur = cur[k] as Record<string, unknown>
  }
  cur[keys[keys.length - 1]!] = value
}

/**
 * Reads sidecar.yaml (optional), applies overrides (dotted path → value), validates.
 * Relative file paths in the config are resolved against the config file's directory.
 */
export async function loadSidecarConfig(file: string | undefined, overrides: ReadonlyArray<[string, unknown]>): Promise<{ config: SidecarConfig; baseDir: string }> {
  let raw: unknown = { apiVersion: 'remora.dev/v1', kind: 'SidecarConfig' }
  let baseDir = process.cwd()
  if (file) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      throw new ConfigError([{ path: '--config', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }])
    }
    try {
      raw = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 })
    } catch (err) {
      throw new ConfigError([{ path: file, message: `invalid YAML: ${(err as Error).message.split('\n')[0]}` }])
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError([{ path: '(root)', message: 'expected a mapping (SidecarConfig)' }])
    baseDir = dirname(resolve(file))
  }
  for (const [path, value] of overrides) setPath(raw as Record<string, unknown>, path, value)
  const r = validateSidecarConfig(raw)
  if (!r.ok) throw new ConfigError(r.issues)
  return { config: r.config, baseDir }
}

export function resolveFrom(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p)
}

export async function loadCredentials(config: SidecarConfig, baseDir: string, now: number): Promise<Credentials> {
  if (!config.identity) throw new ConfigError([{ path: 'identity', message: 'required field is missing' }])
  const files = { certFile: config.identity.certFile, keyFile: config.identity.keyFile, caFile: config.identity.caFile }
  const pems: Record<string, string> = {}
  for (const [field, path] of Object.entries(files)) {
    try {
      pems[field] = await readFile(resolveFrom(baseDir, path), 'utf8')
    } catch (err) {
      throw new ConfigError([{ path: `identity.${field}`, message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }])
    }
  }
  try {
    const creds = buildCredentials({ certPem: pems.certFile!, keyPem: pems.keyFile!, caPem: pems.caFile! }, config.trustDomain, now)
    const id = creds.identity
    const want = `spiffe://${config.trustDomain}/ns/${config.workload.namespace}/sa/${config.workload.serviceAccount}`
    if (id.uri !== want) throw new ConfigError([{ path: 'identity.certFile', message: `certificate identity ${id.uri} does not match the workload (${want})` }])
    return creds
  } catch (err) {
    if (hasCode(err, 'REMORA_ERR_CONFIG_CREDENTIALS')) throw new ConfigError([{ path: `identity.${(err as CredentialError).field}`, message: (err as CredentialError).message }])
    throw err
  }
}

export async function loadPolicies(config: SidecarConfig, baseDir: string): Promise<{ policies: PolicyDocument[]; paths: string[]; warnings: string[] }> {
  const paths = config.policies.files.map((p) => resolveFrom(baseDir, p))
  let sources
  try {
    sources = await readPolicySources(paths)
  } catch (err) {
    throw new ConfigError([{ path: 'policies.files', message: (err as Error).message }])
  }
  const r = validateDocuments(sources, { trustDomains: [config.trustDomain], rootNamespace: config.policies.rootNamespace })
  if (r.errors.length) {
    throw new ConfigError(r.errors.map((e) => ({ path: `policies.files: ${e.source ?? ''}${e.doc !== undefined ? `#${e.doc}` : ''} ${e.path}`, message: `${e.message} (${e.code})` })))
  }
  return { policies: r.policies, paths, warnings: r.warnings.map((w) => `${w.source ?? ''} ${w.path}: ${w.message} (${w.code})`) }
}
