// Header rules every engine (and the stages) must agree on, written once.

/** RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Connection: never forwarded, re-made per hop. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'trailer', 'proxy-authenticate', 'proxy-authorization'])

/** `x-remora-*` / `x-envoy-*` (lower-case name): the sidecar's own namespace, never taken from a caller or an app. */
export function isSidecarOwnedHeader(k: string): boolean {
  return k.charCodeAt(0) === 120 /* x */ && k.charCodeAt(1) === 45 /* - */ && (k.startsWith('x-remora-') || k.startsWith('x-envoy-'))
}

/** The lower-case field names a `Connection` header value lists (they are hop-by-hop for this message). */
export function connectionNamed(value: string | readonly string[] | undefined): ReadonlySet<string> | null {
  if (value === undefined) return null
  const out = new Set<string>()
  for (const v of typeof value === 'string' ? [value] : value) for (const n of v.toLowerCase().split(',')) out.add(n.trim())
  return out
}

/**
 * Whether a response header from upstream is passed on: not hop-by-hop, not named in its
 * `Connection`, and, from the local app (inbound), not in the sidecar's namespace: an app cannot
 * imitate a sidecar's denial (`x-remora-response-flags: AZ`, `x-remora-denied-by`).
 */
export function passesResponseHeader(k: string, named: ReadonlySet<string> | null, fromApp: boolean): boolean {
  return !HOP_BY_HOP.has(k) && !(named !== null && named.has(k)) && !(fromApp && isSidecarOwnedHeader(k))
}
