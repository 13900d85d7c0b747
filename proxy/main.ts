// Composition root of the sidecar: the only place that reads flags and the environment, and
// builds the real dependencies (clock, logger, access log sink). It imports little at the top:
// the sidecar itself loads only after the process has its V8 sizing (see reexecWithV8Flags), so
// that a process that replaces itself has not loaded it for nothing.
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import type * as Yaml from 'yaml'
import { ConfigError } from './config/errors.js'
import type { Logger, Sidecar } from './sidecar.js'
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
  const { parse } = createRequire(import.meta.url)('yaml') as typeof Yaml
  try {
    return parse(v)
  } catch {
    return v
  }
}

/**
 * V8 sizing of a sidecar (bench/hot-path.md, "V8 sizing"): semi-spaces of 4 MiB (V8 grows its
 * young generation to 16 MiB semi-spaces on Node 20 and to 52 MiB of young generation on Node 26,
 * and keeps it), and a 256 MiB old-generation limit, under which V8 also collects the old
 * generation before it has grown by tens of MiB of dead objects (with its 4 GiB default it waits).
 * Measured per sidecar under 1 KiB load: Node 20 peak RSS 108 → 82 MB, Node 26 172–179 → 112–118.
 * REMORA_V8_FLAGS replaces the list (`off` for none); a flag already given on the command line or
 * in NODE_OPTIONS, with any value, wins over it.
 */
export const SIDECAR_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--max-old-space-size=256']

const V8_FLAG = /^--[a-z0-9][a-z0-9_-]*(=[A-Za-z0-9._:-]+)?$/
const flagName = (a: string): string => a.split('=')[0]!.replace(/_/g, '-')

/** The sizing flags this process was started without: REMORA_V8_FLAGS (or the default list) less those already given. */
export function missingV8Flags(env: NodeJS.ProcessEnv, execArgv: readonly string[]): string[] {
  const raw = env.REMORA_V8_FLAGS
  if (raw !== undefined && (raw.trim() === '' || raw.trim() === 'off')) return []
  const wanted = raw === undefined ? SIDECAR_V8_FLAGS : raw.trim().split(/\s+/)
  const bad = wanted.find((f) => !V8_FLAG.test(f))
  if (bad !== undefined) throw new ConfigError([{ path: 'REMORA_V8_FLAGS', message: `expected --flag or --flag=value separated by spaces, or off; got "${bad}"` }])
  const given = new Set([...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map(flagName))
  return wanted.filter((f) => !given.has(flagName(f)))
}

/**
 * V8 sizes its heap when the process starts: no flag set later changes it (v8.setFlagsFromString
 * of --max-semi-space-size or --max-old-space-size has no effect). Where the runtime can replace its
 * own process (process.execve: Node ≥ 22.15, the image's Node 26), the proxy command starts again
 * with the flags, same PID, before it has loaded anything else; REMORA_V8_EXEC marks the second
 * start. Elsewhere it returns what is missing, and the sidecar says so (NODE_OPTIONS sets them).
 */
function reexecWithV8Flags(env: NodeJS.ProcessEnv): string[] {
  const missing = missingV8Flags(env, process.execArgv)
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve
  if (missing.length === 0 || env.REMORA_V8_EXEC !== undefined || typeof execve !== 'function') return missing
  return execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)], { ...env, REMORA_V8_EXEC: missing.join(' ') })
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
  let args: ReturnType<typeof parseProxyArgs>
  let unsized: string[]
  try {
    args = parseProxyArgs(argv)
    if (args.help) {
      process.stdout.write(`${PROXY_USAGE}\n`)
      return 0
    }
    unsized = reexecWithV8Flags(process.env)
  } catch (err) {
    return reportStartError(err)
  }
  const [{ default: pino }, { loadCredentials, loadPolicies, loadSidecarConfig }, { startPolicyReload }, { Sidecar }, { createAccessLogWriter, pickOtelEnv }, { compactHeap }] = await Promise.all([
    import('pino'),
    import('./config/index.js'),
    import('./reload.js'),
    import('./sidecar.js'),
    import('./telemetry/index.js'),
    import('./engines/common/index.js'),
  ])
  const logger = pino({ base: { component: 'remora-proxy' } }, pino.destination({ dest: 2, sync: false }))
  if (unsized.length > 0 && process.env.REMORA_V8_EXEC === undefined) {
    logger.info({ event: 'v8_flags_not_applied', flags: unsized, node: process.version }, 'this Node cannot restart itself with the sidecar V8 flags (process.execve needs Node >= 22.15): set them in NODE_OPTIONS')
  }
  try {
    const { config, baseDir } = await loadSidecarConfig(args.file, args.overrides)
    const clock = { now: () => Date.now() }
    // With controlPlane the identity, clusters and policies come from the control plane: start
    // without them and fail closed (503 NC, inbound refused, /ready false) until the first snapshot.
    const credentials = config.controlPlane ? null : await loadCredentials(config, baseDir, clock.now())
    const { policies, paths, warnings } = await loadPolicies(config, baseDir)
    for (const w of warnings) logger.warn({ event: 'policy_warning', warning: w }, 'policy warning')
    const access = createAccessLogWriter(config.accessLog)
    // The control-plane client (join token, its CSR, the snapshot stream) is loaded
    // only by a sidecar that has a controlPlane section, before anything binds: a static sidecar
    // never pays for its code, and a broken install fails here, not after the listeners are up.
    const xdsClient = config.controlPlane ? await import('./xds/index.js') : null
    const sc: Sidecar = await Sidecar.start({ config, credentials, policies }, { clock, logger: logger as unknown as Logger, accessLog: access.write, otelEnv: pickOtelEnv(process.env) })
    const watcher = await startPolicyReload(sc, paths, { trustDomain: config.trustDomain, rootNamespace: config.policies.rootNamespace, logger: logger as unknown as Logger })
    const xds = xdsClient ? await xdsClient.startControlPlaneClient(sc, config, baseDir, { clock, logger: logger as unknown as Logger }) : null
    const settle = compactWhenIdle(compactHeap)
    await new Promise<void>((resolve) => {
      const stop = (): void => resolve()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    })
    clearInterval(settle)
    await watcher.close()
    await xds?.close()
    await sc.close()
    access.flush()
    return 0
  } catch (err) {
    return reportStartError(err)
  }
}

/**
 * Start-up grows V8's young generation and V8 14 (Node 26) keeps it at idle: once the sidecar has
 * been idle for a second (event loop under 2 % busy), one compacting collection gives it back
 * (Node 26: 92 → 82 MB idle). Never under traffic: it waits (checking every second, for a minute)
 * and gives up. The timer never keeps the process alive.
 */
function compactWhenIdle(compact: () => void): NodeJS.Timeout {
  let last = performance.eventLoopUtilization()
  let checks = 0
  const t = setInterval(() => {
    const now = performance.eventLoopUtilization()
    const busy = performance.eventLoopUtilization(now, last).utilization
    last = now
    if (busy < 0.02) compact()
    if (busy < 0.02 || ++checks >= 60) clearInterval(t)
  }, 1000)
  t.unref()
  return t
}

/** Exit code 2 and the message for what the operator must fix; anything else is thrown on. */
function reportStartError(err: unknown): number {
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
