// `remora ca init | issue`: PEM files for static set-ups (no control plane). Issuance goes through
// the same CSR path as the control plane, so the same identity checks apply.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  createCsr,
  createRootCa,
  DEFAULT_LEAF_TTL_MS,
  generateKeyPair,
  issueFromCsr,
  loadRootCa,
  systemClock,
} from '../../control-plane/ca/index.js'
import { UsageError } from '../errors.js'

const USAGE = `usage:
  remora ca init  --trust-domain <td> --out <dir> [--common-name <cn>] [--validity 87600h] [--force]
      writes <dir>/ca.pem and <dir>/ca-key.pem (0600); refuses to overwrite a key without --force
  remora ca issue --ca-dir <dir> --spiffe-id spiffe://<td>/ns/<ns>/sa/<sa> --out <prefix> [--ttl 24h]
      writes <prefix>.pem and <prefix>-key.pem (0600), signed by <dir>/ca.pem + ca-key.pem

durations: <n>ms, <n>s, <n>m, <n>h, <n>d (e.g. 24h, 90m, 10s)`



const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim())
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : NaN
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new UsageError(`invalid duration "${text}" (use e.g. 24h, 90m, 10s)`)
  return ms
}

async function writeSecret(file: string, data: string, force: boolean): Promise<void> {
  try {
    await writeFile(file, data, { mode: 0o600, flag: force ? 'w' : 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${file} already exists (use --force to overwrite it)`)
    throw err
  }
  await chmod(file, 0o600) // an overwritten file keeps its old mode otherwise
}

async function readCaFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); run "remora ca init" first?`)
  }
}

async function init(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'trust-domain': { type: 'string' },
      out: { type: 'string' },
      'common-name': { type: 'string' },
      validity: { type: 'string' },
      force: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) return help()
  const trustDomain = values['trust-domain']
  const out = values.out
  if (!trustDomain) throw new UsageError('--trust-domain is required')
  if (!out) throw new UsageError('--out is required')
  const validityMs = values.validity ? parseDuration(values.validity) : undefined
  const ca = await createRootCa({ trustDomain, commonName: values['common-name'], validityMs }, { clock: systemClock })
  await mkdir(out, { recursive: true })
  const keyFile = join(out, 'ca-key.pem')
  const certFile = join(out, 'ca.pem')
  await writeSecret(keyFile, ca.keyPem, values.force)
  await writeFile(certFile, ca.certPem)
  console.log(`wrote ${certFile} and ${keyFile} (trust domain ${ca.trustDomain}, expires ${ca.cert.notAfter.toISOString()})`)
  return 0
}

async function issue(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'ca-dir': { type: 'string' },
      'spiffe-id': { type: 'string' },
      out: { type: 'string' },
      ttl: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) return help()
  const caDir = values['ca-dir']
  const spiffeId = values['spiffe-id']
  const out = values.out
  if (!caDir) throw new UsageError('--ca-dir is required')
  if (!spiffeId) throw new UsageError('--spiffe-id is required')
  if (!out) throw new UsageError('--out is required')
  const ttlMs = values.ttl ? parseDuration(values.ttl) : DEFAULT_LEAF_TTL_MS
  const ca = await loadRootCa(await readCaFile(join(caDir, 'ca.pem')), await readCaFile(join(caDir, 'ca-key.pem')))
  const { keys, keyPem } = await generateKeyPair()
  const csr = await createCsr(keys, spiffeId)
  const cert = await issueFromCsr(ca, csr, { spiffeId, ttlMs }, { clock: systemClock })
  await mkdir(dirname(out), { recursive: true })
  const keyFile = `${out}-key.pem`
  const certFile = `${out}.pem`
  // A workload cert is re-issued routinely: overwriting the old pair is the expected use.
  await writeSecret(keyFile, keyPem, true)
  await writeFile(certFile, cert.certPem)
  console.log(`wrote ${certFile} and ${keyFile} (${spiffeId}, serial ${cert.serial}, expires ${cert.notAfter.toISOString()})`)
  return 0
}

function help(): number {
  console.log(USAGE)
  return 0
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  try {
    switch (sub) {
      case 'init':
        return await init(rest)
      case 'issue':
        return await issue(rest)
      case '--help':
      case '-h':
      case 'help':
        return help()
      case undefined:
        console.error(`remora ca: missing subcommand (init | issue)\n\n${USAGE}`)
        return 2
      default:
        console.error(`remora ca: unknown subcommand "${sub}" (init | issue)`)
        return 2
    }
  } catch (err) {
    // One line, no stack: messages here carry paths and SPIFFE IDs, never key material.
    const msg = err instanceof Error ? err.message : String(err)
    console.error(`remora ca ${sub}: ${msg.split('\n')[0]}`)
    return 2
  }
}
