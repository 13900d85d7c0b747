#!/usr/bin/env node
// The `remora` command: one file per subcommand under cli/commands/, loaded lazily so that
// `remora validate` does not pay for the proxy's start-up.
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

export interface CommandModule {
  /** Runs the command; resolves to the process exit code (long-running commands resolve on shutdown). */
  run(argv: string[]): Promise<number>
}

const COMMANDS: Record<string, { file: string; summary: string }> = {
  proxy: { file: 'proxy', summary: 'run the sidecar (--config sidecar.yaml)' },
  'control-plane': { file: 'control-plane', summary: 'run the control plane' },
  demo: { file: 'demo', summary: 'start a local mesh: control plane + three services with sidecars' },
  ca: { file: 'ca', summary: 'ca init | ca issue: PEM files for static set-ups' },
  validate: { file: 'validate', summary: 'validate policy files offline (-f file|dir ...)' },
  check: { file: 'check', summary: 'would this request be allowed? (offline, or against the live store)' },
  apply: { file: 'apply', summary: 'apply policies to the control plane (-f)' },
  get: { file: 'get', summary: 'list policies in the control plane' },
  delete: { file: 'delete', summary: 'delete a policy from the control plane' },
  status: { file: 'status', summary: 'sync status of every sidecar' },
  graph: { file: 'graph', summary: 'the service graph from the traffic record (-n NS, --since 24h)' },
  suggest: { file: 'suggest', summary: 'least-privilege AuthorizationPolicies from the traffic record (-n NS)' },
  quarantine: { file: 'quarantine', summary: 'cut a workload identity off the mesh, both ways, now (--list)' },
  release: { file: 'release', summary: 'end the quarantine of a workload identity' },
  token: { file: 'token', summary: 'token create: a join token for one workload identity' },
  inject: { file: 'inject', summary: 'add the sidecar to Kubernetes manifests (-f file|-)' },
  webhook: { file: 'webhook', summary: 'the sidecar-injection admission webhook (HTTPS); webhook certs' },
  'init-iptables': { file: 'init-iptables', summary: 'write (or --clean-up) the pod traffic interception rules' },
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(15)} ${c.summary}`)
  return `usage: remora <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nremora <command> --help shows a command's options.`
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage())
    return name ? 0 : 2
  }
  if (name === '--version') {
    console.log(process.env.npm_package_version ?? '0.1.0')
    return 0
  }
  const cmd = COMMANDS[name]
  if (!cmd) {
    console.error(`remora: unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  let mod: CommandModule
  try {
    // @vite-ignore: Vite's dynamic-import-vars transform would prepend an import above the
    // shebang and break parsing under vitest; the plain runtime import resolves fine there too.
    mod = (await import(/* @vite-ignore */ `./commands/${cmd.file}.js`)) as CommandModule
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(`commands/${cmd.file}.`)) {
      console.error(`remora: "${name}" is not available in this build`)
      return 2
    }
    throw err
  }
  return mod.run(rest)
}

// npm's bin link is a symlink: compare real paths.
const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      console.error(`remora: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 1
    },
  )
}
