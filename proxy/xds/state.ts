import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { JWK } from 'jose'

/**
 * What a sidecar keeps across restarts in controlPlane.stateDir (0700; files 0600): its key and
 * certificate, the trust bundle, the control plane's pinned signing key, and the last good
 * snapshot exactly as signed (re-verified at start, so a tampered file is refused).
 */
export interface PersistedState {
  certPem: string
  keyPem: string
  trustBundle: string
  signingKey: JWK
  controlPlaneIdentity: string
  snapshotJws: string | null
}

async function writeAtomic(dir: string, name: string, data: string): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`)
  await writeFile(tmp, data, { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, join(dir, name))
}

export async function saveIdentity(dir: string, s: Omit<PersistedState, 'snapshotJws'>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  await writeAtomic(dir, 'key.pem', s.keyPem)
  await writeAtomic(dir, 'cert.pem', s.certPem)
  await writeAtomic(dir, 'trust-bundle.pem', s.trustBundle)
  await writeAtomic(dir, 'control-plane.json', JSON.stringify({ signingKey: s.signingKey, identity: s.controlPlaneIdentity }))
}

export async function saveSnapshot(dir: string, jws: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await writeAtomic(dir, 'snapshot.jws', jws)
}

export async function loadState(dir: string): Promise<PersistedState | null> {
  const read = (n: string): Promise<string | null> => readFile(join(dir, n), 'utf8').catch(() => null)
  const [certPem, keyPem, trustBundle, cp, snapshotJws] = await Promise.all([read('cert.pem'), read('key.pem'), read('trust-bundle.pem'), read('control-plane.json'), read('snapshot.jws')])
  if (!certPem || !keyPem || !trustBundle || !cp) return null
  try {
    const j = JSON.parse(cp) as { signingKey: JWK; identity: string }
    return { certPem, keyPem, trustBundle, signingKey: j.signingKey, controlPlaneIdentity: j.identity, snapshotJws }
  } catch {
    return null
  }
}
