// Composition root of `remora control-plane`: the only place that reads flags and the environment
// and builds the real dependencies (store, clock, logger). Prints the admin token once, at the
// first start against an empty store, and writes the CLI's admin file (0600).
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { ControlPlane, type ControlPlaneOptions, type Logger } from './control-plane.js'
import type { KubeClient } from './kubernetes/index.js'
import { hasCode } from '../proxy/errors/index.js'
import { OutboundTrafficPolicySchema, type OutboundTrafficPolicy } from '../proxy/snapshot/index.js'
import { openStore } from './store/index.js'
import { parseJaegerUi } from './ui/index.js'

export const CONTROL_PLANE_USAGE = `usage: remora control-plane [--store file://<dir>|etcd://host:port[,host:port]] [flags]

  --store URL            where policies, registrations and CA material live (default file://./remora-data)
  --listen HOST:PORT     the HTTPS port for sidecars and the CLI (default 127.0.0.1:15010)
  --advertise HOST:PORT  the address written into the admin file (default: the listen address)
  --trust-domain TD      (default cluster.local)
  --root-namespace NS    mesh-wide policy namespace (default remora-system)
  --cert-ttl DURATION    workload certificate lifetime, e.g. 24h, 10s (default 24h)
  --grace DURATION       how long a gone sidecar stays in clusters (default 30s)
  --push-debounce DURATION  quiet period before a discovery change is pushed (default 100ms;
                         at most 10x that after the first change); policy changes go at once
  --traffic-retention DURATION  how long the traffic record keeps what sidecars reported
                         (hour buckets; default 24h)
  --jaeger-ui URL        Jaeger's UI (http(s)://host:16686): the web view (/ui/) links each edge's
                         sampled trace to <URL>/trace/<id>; absent: no link
  --admin-file PATH      where the CLI finds the server, CA and admin token
                         (default $REMORA_CONFIG or ~/.config/remora/admin.json)
  --replica-id ID        name of this replica in status (default: random)
  --outbound-traffic-policy ALLOW_ANY|REGISTRY_ONLY  mesh-wide, for destinations outside the
                         mesh (default ALLOW_ANY: passed through); a sidecar's own setting wins
  --allowed-external-host HOST  under REGISTRY_ONLY, an external host still allowed (by TLS SNI
                         or HTTP Host; exact or *.domain); repeatable
  --source store|kubernetes  where policies come from (default store: remora apply). kubernetes:
                         the security.remora.dev (and security.istio.io) CRDs, each one's status
                         set to Valid/Invalid; apply/delete are refused; sidecars may also
                         bootstrap with their projected service-account token (TokenReview)
  --kubeconfig PATH      API server credentials for --source kubernetes (default: in-cluster
                         when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config)`

function duration(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v)
  if (!m) throw new Error(`${flag}: expected a duration like 10s, 5m, 24h, 7d`)
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'])
}

export function defaultAdminFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.REMORA_CONFIG ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'remora', 'admin.json')
}

export async function writeAdminFile(path: string, content: { server: string; token: string; caPem: string; identity: string }): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFile(path, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 })
  await chmod(path, 0o600)
}

export async function runControlPlane(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        store: { type: 'string' },
        listen: { type: 'string' },
        advertise: { type: 'string' },
        'trust-domain': { type: 'string' },
        'root-namespace': { type: 'string' },
        'cert-ttl': { type: 'string' },
        grace: { type: 'string' },
        'push-debounce': { type: 'string' },
        'traffic-retention': { type: 'string' },
        'jaeger-ui': { type: 'string' },
        'outbound-traffic-policy': { type: 'string' },
        'allowed-external-host': { type: 'string', multiple: true },
        'admin-file': { type: 'string' },
        'replica-id': { type: 'string' },
        source: { type: 'string' },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora control-plane: ${(err as Error).message}\n\n${CONTROL_PLANE_USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(CONTROL_PLANE_USAGE)
    return 0
  }
  const logger = pino({ base: { component: 'remora-control-plane' } }, pino.destination({ dest: 2, sync: false }))
  let listen: { host: string; port: number }
  let certTtlMs: number | undefined
  let graceMs: number | undefined
  let pushDebounceMs: number | undefined
  let trafficRetentionMs: number | undefined
  let jaegerUi: string | undefined
  let outboundTrafficPolicy: OutboundTrafficPolicy | undefined
  try {
    const l = /^(.+):(\d{1,5})$/.exec(values.listen ?? '127.0.0.1:15010')
    if (!l) throw new Error('--listen: expected host:port')
    listen = { host: l[1]!.replace(/^\[|\]$/g, ''), port: Number(l[2]) }
    if (values['cert-ttl']) certTtlMs = duration(values['cert-ttl'], '--cert-ttl')
    if (values.grace) graceMs = duration(values.grace, '--grace')
    if (values['push-debounce']) pushDebounceMs = duration(values['push-debounce'], '--push-debounce')
    if (values['jaeger-ui'] !== undefined) jaegerUi = parseJaegerUi(values['jaeger-ui'])
    if (values['traffic-retention']) {
      trafficRetentionMs = duration(values['traffic-retention'], '--traffic-retention')
      if (trafficRetentionMs < 60_000) throw new Error('--traffic-retention: at least 1m')
    }
    const otp = values['outbound-traffic-policy']
    const allowed = values['allowed-external-host'] ?? []
    if (otp !== undefined || allowed.length > 0) {
      const r = OutboundTrafficPolicySchema.safeParse({ mode: otp ?? 'ALLOW_ANY', allowedHosts: allowed })
      if (!r.success) throw new Error(`--outbound-traffic-policy / --allowed-external-host: ${r.error.issues.map((i) => `${i.path.join('.') || 'mode'}: ${i.message}`).join('; ')}`)
      outboundTrafficPolicy = r.data
    }
    if (values.source !== undefined && values.source !== 'store' && values.source !== 'kubernetes') throw new Error('--source: expected store or kubernetes')
    if (values.kubeconfig !== undefined && values.source !== 'kubernetes') throw new Error('--kubeconfig needs --source kubernetes')
  } catch (err) {
    console.error(`remora control-plane: ${(err as Error).message}`)
    return 2
  }
  let store
  try {
    store = await openStore(values.store ?? 'file://./remora-data')
  } catch (err) {
    console.error(`remora control-plane: ${(err as Error).message}`)
    return hasCode(err, 'REMORA_ERR_STORE_URL') ? 2 : 1
  }
  let kube: Pick<ControlPlaneOptions, 'policyFeed' | 'tokenReviewer' | 'discoveryFeed'> = {}
  let kubeClient: KubeClient | null = null
  if (values.source === 'kubernetes') {
    try {
      const { createKubeClient, createKubernetesDiscoveryFeed, createKubernetesPolicyFeed, createKubernetesTokenReviewer, loadKubeConnection } = await import('./kubernetes/index.js')
      const inCluster = values.kubeconfig === undefined && Boolean(process.env.KUBERNETES_SERVICE_HOST)
      const client = createKubeClient(await loadKubeConnection({ inCluster, kubeconfig: values.kubeconfig }))
      kubeClient = client
      kube = {
        policyFeed: createKubernetesPolicyFeed(client, { logger: logger as unknown as Logger }),
        tokenReviewer: createKubernetesTokenReviewer(client),
        discoveryFeed: createKubernetesDiscoveryFeed(client, { logger: logger as unknown as Logger }),
      }
    } catch (err) {
      await store.close()
      console.error(`remora control-plane: --source kubernetes: ${(err as Error).message}`)
      return 1
    }
  }
  let cp: ControlPlane
  try {
    cp = await ControlPlane.start(
      {
        store,
        listen,
        advertise: values.advertise,
        trustDomain: values['trust-domain'],
        rootNamespace: values['root-namespace'],
        certTtlMs,
        graceMs,
        ...(pushDebounceMs !== undefined ? { pushDebounceMs, pushDebounceMaxMs: pushDebounceMs * 10 } : {}),
        replicaId: values['replica-id'],
        trafficRetentionMs,
        ...(jaegerUi ? { jaegerUi } : {}),
        ...(outboundTrafficPolicy ? { outboundTrafficPolicy } : {}),
        ...kube,
      },
      { clock: { now: () => Date.now() }, logger: logger as unknown as Logger },
    )
  } catch (err) {
    await store.close()
    console.error(`remora control-plane: cannot start: ${(err as Error).message}`)
    return 1
  }
  // The CA for injected sidecars (their bootstrap authenticates the control plane with it).
  const caRoot = kubeClient ? await (await import('./kubernetes/index.js')).CaRootPublisher.start(kubeClient, { caPem: cp.trustBundle, logger: logger as unknown as Logger }) : null
  cp.events.on('trust-bundle', (pem: string) => void caRoot?.update(pem))
  const adminFile = values['admin-file'] ?? defaultAdminFile()
  if (cp.adminTokenCreated) {
    await writeAdminFile(adminFile, { server: `https://${cp.address}`, token: cp.adminTokenCreated, caPem: cp.caPem, identity: cp.identity })
    // Printed once, on stdout (never in the log): the store keeps only its hash.
    console.log(`remora control plane: admin token (shown once, saved 0600 in ${adminFile}):\n  ${cp.adminTokenCreated}`)
  }
  console.log(`remora control plane listening on https://${cp.address} (store ${store.url}, replica ${cp.replicaId})`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await caRoot?.close()
  await cp.close()
  await store.close()
  logger.flush()
  return 0
}
