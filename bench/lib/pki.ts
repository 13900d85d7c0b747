// The benchmark's PKI, minted with the real CLI (`remora ca init | issue`) so every contender
// uses the same ECDSA P-256 certificates with SPIFFE URI SANs from our own CA.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { run } from './proc.js'

export const TRUST_DOMAIN = 'bench.local'
export const CLIENT_ID = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/client`
export const APP_ID = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/app`

export interface LeafFiles {
  readonly cert: string
  readonly key: string
  /** cert + key in one file (haproxy's `crt`). */
  readonly bundle: string
}

export interface BenchPki {
  readonly dir: string
  readonly ca: string
  /** The outbound side's identity (the calling workload). */
  readonly client: LeafFiles
  /** The inbound side's identity (the called workload). */
  readonly app: LeafFiles
}

export function mintPki(cliJs: string, dir: string): BenchPki {
  const remora = (args: string[]): void => {
    const r = run(process.execPath, [cliJs, ...args])
    if (r.code !== 0) throw new Error(`remora ${args.slice(0, 2).join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`)
  }
  const caDir = join(dir, 'ca')
  remora(['ca', 'init', '--trust-domain', TRUST_DOMAIN, '--out', caDir, '--common-name', 'remora bench CA'])
  const leaf = (name: string, id: string): LeafFiles => {
    const prefix = join(dir, name)
    remora(['ca', 'issue', '--ca-dir', caDir, '--spiffe-id', id, '--out', prefix, '--ttl', '24h'])
    const bundle = `${prefix}-bundle.pem`
    writeFileSync(bundle, readFileSync(`${prefix}.pem`, 'utf8') + readFileSync(`${prefix}-key.pem`, 'utf8'), { mode: 0o600 })
    return { cert: `${prefix}.pem`, key: `${prefix}-key.pem`, bundle }
  }
  return { dir, ca: join(caDir, 'ca.pem'), client: leaf('client', CLIENT_ID), app: leaf('app', APP_ID) }
}
