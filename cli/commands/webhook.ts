// `remora webhook`: the sidecar-injection admission webhook (HTTPS, AdmissionReview v1), run by the
// remora-injector Deployment. `remora webhook certs` mints its serving certificate and the CA for
// the MutatingWebhookConfiguration's caBundle, for clusters without cert-manager.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { parse as parseYaml } from 'yaml'
import { createRootCa, issueWorkloadCert, systemClock } from '../../control-plane/ca/index.js'
import { createInjectConfig, isInjectError, InjectionWebhook, type InjectConfigInput } from '../../control-plane/inject/index.js'

const USAGE = `usage: remora webhook --cert FILE --key FILE [--listen 0.0.0.0:15017] [--config inject.yaml]
                      [--image IMAGE] [--control-plane HOST:PORT] [--legacy-sidecar]
       remora webhook certs --out DIR [--service remora-injector] [--namespace remora-system] [--days 365]

The first form serves POST /inject (AdmissionReview v1 → JSONPatch) and GET /healthz over HTTPS,
and reloads the certificate files when they change (a renewed Secret).
The second writes ca.crt, tls.crt and tls.key: make the Secret from tls.crt/tls.key and put
base64(ca.crt) in the MutatingWebhookConfiguration's caBundle (docs/kubernetes.md).`

const DAY = 86_400_000

async function certs(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { out: { type: 'string' }, service: { type: 'string' }, namespace: { type: 'string' }, days: { type: 'string' } },
    strict: true,
  })
  if (!values.out) {
    console.error(`remora webhook certs: --out DIR is required\n\n${USAGE}`)
    return 2
  }
  const service = values.service ?? 'remora-injector'
  const ns = values.namespace ?? 'remora-system'
  const days = Number(values.days ?? '365')
  if (!(days >= 1 && days <= 3650)) {
    console.error('remora webhook certs: --days must be 1..3650')
    return 2
  }
  const ca = await createRootCa({ trustDomain: 'cluster.local', commonName: `remora webhook CA (${service}.${ns})` }, { clock: systemClock })
  const dnsNames = [`${service}.${ns}.svc`, `${service}.${ns}.svc.cluster.local`, `${service}.${ns}`, service]
  const leaf = await issueWorkloadCert(ca, { uris: [], dnsNames, ttlMs: days * DAY }, { clock: systemClock })
  await mkdir(values.out, { recursive: true, mode: 0o700 })
  await writeFile(join(values.out, 'ca.crt'), ca.certPem)
  await writeFile(join(values.out, 'tls.crt'), leaf.certPem)
  await writeFile(join(values.out, 'tls.key'), leaf.keyPem, { mode: 0o600 })
  console.log(`wrote ${join(values.out, 'ca.crt')}, tls.crt, tls.key (DNS ${dnsNames[0]}, ${days} days)`)
  return 0
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'certs') {
    try {
      return await certs(argv.slice(1))
    } catch (err) {
      console.error(`remora webhook certs: ${(err as Error).message}`)
      return 2
    }
  }
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        cert: { type: 'string' },
        key: { type: 'string' },
        listen: { type: 'string' },
        config: { type: 'string' },
        image: { type: 'string' },
        'control-plane': { type: 'string' },
        'legacy-sidecar': { type: 'boolean' },
        'no-native-sidecar': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora webhook: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  if (!values.cert || !values.key) {
    console.error(`remora webhook: --cert and --key are required\n\n${USAGE}`)
    return 2
  }
  const l = /^(.+):(\d{1,5})$/.exec(values.listen ?? '0.0.0.0:15017')
  if (!l) {
    console.error('remora webhook: --listen: expected host:port')
    return 2
  }
  const logger = pino({ base: { component: 'remora-webhook' } }, pino.destination({ dest: 2, sync: false }))
  let hook: InjectionWebhook
  try {
    const input: InjectConfigInput = values.config ? ((parseYaml(await readFile(values.config, 'utf8')) as InjectConfigInput | null) ?? {}) : {}
    if (values.image) input.image = values.image
    if (values['control-plane']) input.controlPlane = values['control-plane']
    if (values['legacy-sidecar'] || values['no-native-sidecar']) input.nativeSidecar = false
    const config = createInjectConfig(input)
    const [certPem, keyPem] = await Promise.all([readFile(values.cert, 'utf8'), readFile(values.key, 'utf8')])
    hook = await InjectionWebhook.start({ host: l[1]!.replace(/^\[|\]$/g, ''), port: Number(l[2]), certPem, keyPem, config }, { logger })
  } catch (err) {
    console.error(`remora webhook: cannot start: ${(err as Error).message}${isInjectError(err) ? ` (${err.code})` : ''}`)
    return 2
  }
  logger.info({ event: 'listening', port: hook.port }, 'injection webhook listening')
  // A mounted Secret is updated by swapping a symlink: re-read on a timer rather than fs.watch.
  let last = ''
  const reload = setInterval(() => {
    void Promise.all([readFile(values.cert!, 'utf8'), readFile(values.key!, 'utf8')]).then(
      ([c, k]) => {
        if (last === '') last = c
        else if (c !== last) {
          hook.setCertificate(c, k)
          last = c
          logger.info({ event: 'certificate_reloaded' }, 'webhook certificate reloaded')
        }
      },
      (err: unknown) => logger.warn({ event: 'certificate_reload_failed', err: String(err) }, 'cannot re-read the certificate; keeping the current one'),
    )
  }, 30_000)
  reload.unref()
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  clearInterval(reload)
  await hook.close()
  logger.flush()
  return 0
}
