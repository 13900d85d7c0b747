// The per-test PKI: a real root from our own CA code and leaves minted on demand. Nothing is cached
// across tests; a root plus a leaf costs a few milliseconds of P-256 work.
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createRootCa, issueWorkloadCert, type Clock, type RootCa } from '../../control-plane/ca/index.js'

export interface Leaf {
  certPem: string
  keyPem: string
  /** The SPIFFE ID asked for (null when the URI SANs were overridden). */
  spiffeId: string | null
}

export interface IssueOptions {
  /** notBefore and notAfter both in the past (OpenSSL checks against the system clock). */
  expired?: boolean
  /** notBefore in the future. */
  notYetValid?: boolean
  /** Override the URI SANs: [] = none, several = several. */
  uris?: string[]
  ttlMs?: number
}

export interface TestPki {
  trustDomain: string
  ca: RootCa
  caPem: string
  issue(spiffeId: string, opts?: IssueOptions): Promise<Leaf>
  /** Writes <name>.pem, <name>-key.pem (0600) and ca.pem into dir (created if missing). */
  writeFiles(dir: string, name: string, leaf: Leaf): Promise<{ certFile: string; keyFile: string; caFile: string }>
}

const HOUR = 3_600_000
// Tests run against the real system clock on purpose: that is what OpenSSL checks.
const clock: Clock = { now: () => Date.now() }

export async function createTestPki(opts: { trustDomain?: string } = {}): Promise<TestPki> {
  const trustDomain = opts.trustDomain ?? 'cluster.local'
  const ca = await createRootCa({ trustDomain, commonName: `remora test CA ${trustDomain}` }, { clock })

  async function issue(spiffeId: string, o: IssueOptions = {}): Promise<Leaf> {
    const now = clock.now()
    let window: { notBefore?: Date; notAfter?: Date } = {}
    if (o.expired) window = { notBefore: new Date(now - 2 * HOUR), notAfter: new Date(now - HOUR) }
    else if (o.notYetValid) window = { notBefore: new Date(now + HOUR), notAfter: new Date(now + 2 * HOUR) }
    const leaf = await issueWorkloadCert(ca, { spiffeId, uris: o.uris, ttlMs: o.ttlMs, ...window }, { clock })
    return { certPem: leaf.certPem, keyPem: leaf.keyPem, spiffeId: o.uris ? null : spiffeId }
  }

  async function writeFiles(dir: string, name: string, leaf: Leaf) {
    await mkdir(dir, { recursive: true })
    const certFile = join(dir, `${name}.pem`)
    const keyFile = join(dir, `${name}-key.pem`)
    const caFile = join(dir, 'ca.pem')
    await writeFile(keyFile, leaf.keyPem, { mode: 0o600 })
    await chmod(keyFile, 0o600) // writeFile's mode applies only when it creates the file
    await writeFile(certFile, leaf.certPem)
    await writeFile(caFile, ca.certPem)
    return { certFile, keyFile, caFile }
  }

  return { trustDomain, ca, caPem: ca.certPem, issue, writeFiles }
}
