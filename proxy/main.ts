// Composition root of the sidecar: the only place that reads flags and the environment, and
// builds the real dependencies (clock, logger, access log sink).
import { parseArgs } from 'node:util'
import { parse as parseYaml } from 'yaml'
import pino from 'pino'
import { ConfigError, loadCredentials, loadPolicies, loadSidecarConfig } from './config/index.js'
import { startPolicyReload } from './reload.js'
import { Sidecar, type Logger } from './sidecar.js'
import { createAccessLogWriter, pickOtelEnv } from './telemetry/index.js'
import { hasCode } from './errors/index.js'

export const PROXY_USAGE = `usage: remora proxy --config sidecar.yaml [flags]

Every flag overrides the field of sidecar.yaml it names:
  --config FILE               the SidecarConfig file
  --trust-domain TD           trustDomain
  --namespace NS              workload.namespace
  --service-account SA        workload.serviceAccount
  --label k=v                 workload.labels (repeatable)
  --cert FILE --key FILE --ca FILE     identity.certFile / keyFile / caFile
  --inbound-port N            inbound.port (15006)      --app HOST:PORT   inbound.app
  --outbound-port N           outbound.port (15001)
  --admin-port N              admin.port (15000)        --admin-bind ADDR admin.bind (127.0.0.1)
  --policies PATH             policies.files (repeatable)
  --control-plane HOST:PORT   controlPlane.addresses (repeatable: one per replica)
  --root-namespace NS         policies.rootNamespace (remora-system)
  --path-normalization MODE   BASE | MERGE_SLASHES | DECODE_AND_MERGE_SLASHES
  --engine ENGINE             engine: raw (default: framing-only, raw sockets) | node-http (fallback: node:http + undici)
  --trace-exporter KIND       telemetry.tracing.exporter: otlp (http/protobuf) | otlp-grpc | jaeger | none
  --trace-endpoint URL        telemetry.tracing.endpoint (otlp: http://localhost:4318)
  --trace-sampling RATIO      telemetry.tracing.sampling, e.g. 0.01 (a caller's sampled flag always wins)
  --trace-propagators LIST    telemetry.tracing.propagators: tracecontext,baggage,b3,b3multi,jaeger
  --jaeger-ui URL             telemetry.tracing.jaegerUi: x-remora-trace links on denied/failed responses
  --metrics-port N            telemetry.metrics.port (15090, serves /stats/prometheus)
  --access-log-format F       accessLog.format: json | text (Envoy's default format)
  --access-log-path FILE      accessLog.path (default: stdout)
  --jwt-leeway DURATION       jwt.leeway: exp/nbf clock skew, whole seconds 0s..300s (60s)
  --jwt-cache-size N          jwt.cacheSize: verified tokens kept, 0..1000000 (4096; 0 = off)
  --set path=value            any other field, e.g. --set inbound.timeout=5s, --set jwt.jwksCooldown=1m

Tracing also honours OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, OTEL_TRACES_SAMPLER(_ARG)
and OTEL_PROPAGATORS; sidecar.yaml and flags win over them.

Exit codes: 0 after a clean shutdown, 2 for invalid configuration (the message names the field).`

const FLAG_FIELDS: Record<string, string> = {
  'trust-domain': 'trustDomain',
  namespace: 'workload.namespace',
  'service-account': 'workload.serviceAccount',
  cert: 'identity.certFile',
  key: 'identity.keyFile',
  ca: 'identity.caFile',
  'inbound-port': 'inbound.port',
  app: 'inbound.app',
  'outbound-port': 'outbound.port',
  'admin-port': 'admin.port',
  'admin-bind': 'admin.bind',
  'root-namespace': 'policies.rootNamespace',
  'path-normalization': 'pathNormalization',
  engine: 'engine',
  'trace-exporter': 'telemetry.tracing.exporter',
  'trace-endpoint': 'telemetry.tracing.endpoint',
  'trace-sampling': 'telemetry.tracing.sampling',
  'jaeger-ui': 'telemetry.tracing.jaegerUi',
  'metrics-port': 'telemetry.metrics.port',
  'access-log-format': 'accessLog.format',
  'access-log-path': 'accessLog.path',
  'jwt-leeway': 'jwt.leeway',
  'jwt-cache-size': 'jwt.cacheSize',
}
const NUMERIC = new Set(['inbound.port', 'outbound.port', 'admin.port', 'telemetry.metrics.port', 'jwt.cacheSize'])

function parseYamlValue(v: string): unknown {
  try {
    return parseYaml(v)
  } catch {
    return v
  }
}

function scalar(path: string, v: string): unknown {
  if (NUMERIC.has(path) && /^-?\d+$/.test(v)) return Number(v)
  if (path === 'telemetry.tracing.sampling' && /^(\d+(\.\d*)?|\.\d+)$/.test(v)) return Number(v)
  if (path === 'telemetry.tracing.propagators') return v.split(',').map((s) => s.trim()).filter(Boolean)
  if (v === 'true') return true
  if (v === 'false') return false
  return v
}

export function parseProxyArgs(argv: string[]): { file: string | undefined; overrides: [string, unknown][]; help: boolean } {
  const options = {
    config: { type: 'string' },
    label: { type: 'string', multiple: true },
    policies: { type: 'string', multiple: true },
    'control-plane': { type: 'string', multiple: true },
    set: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
    'trace-propagators': { type: 'string' },
    ...Object.fromEntries(Object.keys(FLAG_FIELDS).map((k) => [k, { type: 'string' }])),
  } as const
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
  const v = values as Record<string, string | string[] | boolean | undefined>
  const overrides: [string, unknown][] = []
  for (const [flag, path] of Object.entries(FLAG_FIELDS)) {
    const val = v[flag]
    if (typeof val === 'string') overrides.push([path, scalar(path, val)])
  }
  if (Array.isArray(v.label)) {
    for (const l of v.label) {
      const i = l.indexOf('=')
      if (i <= 0) throw new ConfigError([{ path: '--label', message: `expected key=value, got "${l}"` }])
      overrides.push([`workload.labels.${l.slice(0, i)}`, l.slice(i + 1)])
    }
  }
  if (Array.isArray(v.policies)) overrides.push(['policies.files', v.policies])
  if (Array.isArray(v['control-plane'])) overrides.push(['controlPlane.addresses', v['control-plane']])
  if (typeof v['trace-propagators'] === 'string') overrides.push(['telemetry.tracing.propagators', scalar('telemetry.tracing.propagators', v['trace-propagators'])])
  if (Array.isArray(v.set)) {
    for (const s of v.set) {
      const i = s.indexOf('=')
      if (i <= 0) throw new ConfigError([{ path: '--set', message: `expected path=value, got "${s}"` }])
      const path = s.slice(0, i)
      // --set takes a YAML value: numbers, booleans, [lists] and {maps} as in sidecar.yaml
      overrides.push([path, parseYamlValue(s.slice(i + 1))])
    }
  }
  return { file: typeof v.config === 'string' ? v.config : undefined, overrides, help: v.help === true }
}

export async function runProxy(argv: string[]): Promise<number> {
  const logger = pino({ base: { component: 'remora-proxy' } }, pino.destination({ dest: 2, sync: false }))
  let sidecar: Sidecar | null = null
  try {
    const args = parseProxyArgs(argv)
    if (args.help) {
      process.stdout.write(`${PROXY_USAGE}\n`)
      return 0
    }
    const { config, baseDir } = await loadSidecarConfig(args.file, args.overrides)
    const clock = { now: () => Date.now() }
    // With controlPlane the identity, clusters and policies come from the control plane: start
    // without them and fail closed (503 NC, inbound refused, /ready false) until the first snapshot.
    const credentials = config.controlPlane ? null : await loadCredentials(config, baseDir, clock.now())
    const { policies, paths, warnings } = await loadPolicies(config, baseDir)
    for (const w of warnings) logger.warn({ event: 'policy_warning', warning: w }, 'policy warning')
    const access = createAccessLogWriter(config.accessLog)
    // The control-plane client (join token, CSR with @peculiar/x509, the snapshot stream) is loaded
    // only by a sidecar that has a controlPlane section, before anything binds: a static sidecar
    // never pays for its code, and a broken install fails here, not after the listeners are up.
    const xdsClient = config.controlPlane ? await import('./xds/index.js') : null
    sidecar = await Sidecar.start({ config, credentials, policies }, { clock, logger: logger as unknown as Logger, accessLog: access.write, otelEnv: pickOtelEnv(process.env) })
    const sc = sidecar
    const watcher = await startPolicyReload(sc, paths, { trustDomain: config.trustDomain, rootNamespace: config.policies.rootNamespace, logger: logger as unknown as Logger })
    const xds = xdsClient ? await xdsClient.startControlPlaneClient(sc, config, baseDir, { clock, logger: logger as unknown as Logger }) : null
    await new Promise<void>((resolve) => {
      const stop = (): void => resolve()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    })
    await watcher.close()
    await xds?.close()
    await sc.close()
    access.flush()
    return 0
  } catch (err) {
    // Matched on the code: a config error lists its issues (ConfigError), a start-up failure names its field (StartupError).
    if (hasCode(err, 'REMORA_ERR_CONFIG_INVALID')) {
      const issues = (err as Partial<ConfigError>).issues
      console.error(issues ? `remora proxy: invalid configuration\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}` : `remora proxy: cannot start\n  ${(err as Error).message}`)
      return 2
    }
    if (hasCode(err, 'REMORA_ERR_NATIVE_ADDON_MISSING')) {
      console.error(`remora proxy: cannot start (REMORA_ERR_NATIVE_ADDON_MISSING)\n  ${(err as Error).message}`)
      return 2
    }
    if (err instanceof Error && 'code' in err && String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`remora proxy: ${err.message}\n\n${PROXY_USAGE}`)
      return 2
    }
    throw err
  }
}
