import { readFile } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'
import { ConfigError } from '../config/load.js'
import type { SidecarConfig } from '../config/schema.js'
import { parseDuration } from '../config/schema.js'
import { ControlPlaneClient, type ControlPlaneClientDeps, type SnapshotTarget } from './client.js'

/** Builds and starts the client from SidecarConfig.controlPlane (files resolved against the config's directory). */
export async function startControlPlaneClient(target: SnapshotTarget, config: SidecarConfig, baseDir: string, deps: ControlPlaneClientDeps, env: NodeJS.ProcessEnv = process.env): Promise<ControlPlaneClient> {
  const cp = config.controlPlane
  if (!cp) throw new ConfigError([{ path: 'controlPlane', message: 'required field is missing' }])
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p))
  let caPem: string
  try {
    caPem = await readFile(at(cp.caFile), 'utf8')
  } catch (err) {
    throw new ConfigError([{ path: 'controlPlane.caFile', message: `cannot read ${cp.caFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }])
  }
  if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError([{ path: 'controlPlane.caFile', message: 'no PEM certificate found' }])
  const bindHost = config.inbound.bind === '0.0.0.0' || config.inbound.bind === '::' ? '127.0.0.1' : config.inbound.bind
  const inboundPort = (target as { ports?: { inbound: number } }).ports?.inbound ?? config.inbound.port
  const client = new ControlPlaneClient(
    target,
    {
      addresses: cp.addresses,
      caPem,
      controlPlaneIdentity: cp.identity ?? `spiffe://${config.trustDomain}/ns/${config.policies.rootNamespace}/sa/remora-control-plane`,
      trustDomain: config.trustDomain,
      token: async () => {
        if (cp.tokenFile) return (await readFile(at(cp.tokenFile), 'utf8').catch(() => '')).trim() || null
        return env[cp.tokenEnv]?.trim() || null
      },
      stateDir: at(cp.stateDir),
      registration: {
        service: cp.service ?? config.workload.name ?? config.workload.serviceAccount,
        labels: config.workload.labels,
        address: cp.advertise ?? `${bindHost}:${inboundPort}`,
      },
      reconnect: { initialMs: parseDuration(cp.reconnect.initial)!, maxMs: parseDuration(cp.reconnect.max)! },
    },
    deps,
  )
  client.start()
  return client
}
