// Checks every injected pod must pass, shared by the injectPod unit tests, `remora inject -f` and
// the webhook tests (after the JSONPatch is applied), so the three paths are held to one standard.
import { expect } from 'vitest'
import type { ContainerLike, PodLike } from '../../control-plane/inject/index.js'

export interface ExpectInjected {
  /** The default app port (--app), or null when the pod declares none. */
  appPort: number | null
  /** --exclude-inbound-ports as init-iptables gets it (every other inbound port is intercepted). */
  excludeInboundPorts?: string
  native?: boolean
  excludeOutboundPorts?: string
  excludeOutboundCidrs?: string
  /** Containers (and init containers) of the original pod, in order, that must still be there. */
  appContainers: string[]
  appInitContainers?: string[]
}

const names = (cs: ContainerLike[] | undefined): (string | undefined)[] => (cs ?? []).map((c) => c.name)

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag)
  return i >= 0 ? args[i + 1] : undefined
}

export function expectInjectedPod(pod: PodLike, e: ExpectInjected): void {
  const native = e.native ?? true
  const spec = pod.spec!
  const init = spec.initContainers!
  // Order: interception first, then the native sidecar, then the app's own init containers.
  if (native) {
    expect(names(init)).toEqual(['remora-init', 'remora-proxy', ...(e.appInitContainers ?? [])])
    expect(names(spec.containers)).toEqual(e.appContainers)
  } else {
    expect(names(init)).toEqual(['remora-init', ...(e.appInitContainers ?? [])])
    expect(names(spec.containers)).toEqual(['remora-proxy', ...e.appContainers])
  }
  const proxy = [...init, ...spec.containers!].find((c) => c.name === 'remora-proxy')! as Record<string, any>
  const initC = init[0]! as Record<string, any>

  // Interception: root with NET_ADMIN/NET_RAW only, the sidecar's UID excluded, every inbound port
  // in but the excluded ones, IPv4 and IPv6.
  expect(initC.args[0]).toBe('init-iptables')
  expect(argValue(initC.args, '--proxy-uid')).toBe('1337')
  expect(argValue(initC.args, '--inbound-ports')).toBe('*')
  expect(argValue(initC.args, '--exclude-inbound-ports')).toBe(e.excludeInboundPorts)
  expect(initC.args.filter((a: string) => a.startsWith('--ipv6'))).toEqual([])
  expect(argValue(initC.args, '--exclude-outbound-ports')).toBe(e.excludeOutboundPorts)
  expect(argValue(initC.args, '--exclude-outbound-cidrs')).toBe(e.excludeOutboundCidrs)
  expect(initC.securityContext).toMatchObject({ runAsUser: 0, allowPrivilegeEscalation: false, privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } })
  expect(initC.resources.limits).toBeDefined()

  // The sidecar: non-root 1337, read-only root, no escalation, resources, readiness gating.
  expect(proxy.args[0]).toBe('proxy')
  expect(argValue(proxy.args, '--app')).toBe(e.appPort === null ? undefined : `127.0.0.1:${e.appPort}`)
  expect(proxy.securityContext).toEqual({
    runAsUser: 1337,
    runAsGroup: 1337,
    runAsNonRoot: true,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  })
  expect(proxy.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) })
  expect(proxy.resources.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) })
  expect(proxy.readinessProbe.exec.command[0]).toBe('node')
  if (native) {
    expect(proxy.restartPolicy).toBe('Always')
    expect(proxy.startupProbe.exec.command.slice(0, 2)).toEqual(['node', '-e'])
  } else {
    expect(proxy.restartPolicy).toBeUndefined()
    expect(proxy.lifecycle.postStart.exec.command.slice(0, 2)).toEqual(['node', '-e'])
  }

  // The projected service-account token, mounted read-only in the sidecar only.
  const token = spec.volumes!.find((v) => v.name === 'remora-token') as Record<string, any>
  expect(token.projected.sources[0].serviceAccountToken).toMatchObject({ audience: 'remora', path: 'remora-token', expirationSeconds: expect.any(Number) })
  expect(proxy.volumeMounts).toContainEqual({ name: 'remora-token', mountPath: '/var/run/secrets/remora/tokens', readOnly: true })
  const others = [...init, ...spec.containers!].filter((c) => c.name !== 'remora-proxy') as Record<string, any>[]
  expect(others.filter((c) => (c.volumeMounts ?? []).some((m: { name: string }) => m.name === 'remora-token'))).toEqual([])
  expect(names(spec.volumes as ContainerLike[]).filter((n) => n === 'remora-token' || n === 'remora-state')).toEqual(['remora-token', 'remora-state'])

  const status = JSON.parse(pod.metadata!.annotations!['remora.dev/status']!)
  expect(status.version).toBe(1)
  expect(status.nativeSidecar).toBe(native)
  expect(status.appPort).toBe(e.appPort)
  expect(status.initContainers).toEqual(native ? ['remora-init', 'remora-proxy'] : ['remora-init'])
  expect(status.containers).toEqual(native ? [] : ['remora-proxy'])
}
