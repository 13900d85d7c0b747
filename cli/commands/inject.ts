// `remora inject -f <file|->`: writes the manifests with the sidecar injected into every pod
// template (like `istioctl kube-inject`), for GitOps or clusters without the webhook. What was
// done to each object, and any warning, goes to stderr; exit 2 on invalid input.
import { readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { createInjectConfig, isInjectError, injectManifests, type InjectConfigInput } from '../../control-plane/inject/index.js'

const USAGE = `usage: remora inject -f <file|-> [-o <file>] [--config inject.yaml] [--image IMAGE]
                     [--control-plane HOST:PORT] [--trust-domain TD] [--legacy-sidecar]

Adds to every pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
List items) the remora sidecar, the init container that sets up interception and the projected
service-account token. Other objects pass through unchanged; already injected ones too.
Every TCP port of the pod is intercepted; the Services in the same file declare the ports'
protocols (appProtocol, port names).
The sidecar is a native sidecar (an init container with restartPolicy: Always, Kubernetes
>= 1.29); --legacy-sidecar (alias --no-native-sidecar) makes it the first container instead, with
a postStart hook that holds the app until the sidecar is ready.
Pod annotations: remora.dev/inject: "false", remora.dev/native-sidecar: "true"|"false",
remora.dev/app-port, remora.dev/exclude-inbound-ports, remora.dev/exclude-outbound-ports,
remora.dev/exclude-outbound-cidrs.
Exit codes: 0 done, 2 invalid input (the message names the object and the reason).`

async function readInput(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8')
  const chunks: Buffer[] = []
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks).toString('utf8')
}

export async function run(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        filename: { type: 'string', short: 'f' },
        output: { type: 'string', short: 'o' },
        config: { type: 'string' },
        image: { type: 'string' },
        'control-plane': { type: 'string' },
        'trust-domain': { type: 'string' },
        'legacy-sidecar': { type: 'boolean' },
        'no-native-sidecar': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`remora inject: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  if (!values.filename) {
    console.error(`remora inject: -f <file|-> is required\n\n${USAGE}`)
    return 2
  }
  try {
    const input: InjectConfigInput = values.config ? ((parseYaml(await readFile(values.config, 'utf8')) as InjectConfigInput | null) ?? {}) : {}
    if (values.image) input.image = values.image
    if (values['control-plane']) input.controlPlane = values['control-plane']
    if (values['trust-domain']) input.trustDomain = values['trust-domain']
    if (values['legacy-sidecar'] || values['no-native-sidecar']) input.nativeSidecar = false
    const cfg = createInjectConfig(input)
    const r = injectManifests(await readInput(values.filename), cfg)
    for (const rep of r.reports) {
      console.error(`${rep.kind}/${rep.name}: ${rep.result}`)
      for (const w of rep.warnings) console.error(`  warning: ${w}`)
    }
    if (values.output) await writeFile(values.output, r.text)
    else process.stdout.write(r.text)
    return 0
  } catch (err) {
    if (isInjectError(err)) {
      console.error(`remora inject: ${err.message} (${err.code})`)
      return 2
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      console.error(`remora inject: ${(err as Error).message}`)
      return 2
    }
    throw err
  }
}
