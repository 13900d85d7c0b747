// SPIFFE ID syntax (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md):
// spiffe://<trust-domain>/<path>; trust domain [a-z0-9.-_] lower case, path segments
// [A-Za-z0-9.-_], no empty, "." or ".." segments, no query/fragment/port/userinfo.
export interface SpiffeId {
  readonly trustDomain: string
  readonly path: string
  /** Set when the path is Istio's /ns/<namespace>/sa/<service-account>. */
  readonly namespace: string | null
  readonly serviceAccount: string | null
  readonly uri: string
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/
const SEGMENT = /^[A-Za-z0-9._-]+$/
const PREFIX = 'spiffe://'

export function parseSpiffeId(uri: string): SpiffeId | null {
  if (typeof uri !== 'string' || uri.length > 2048 || !uri.startsWith(PREFIX)) return null
  const rest = uri.slice(PREFIX.length)
  const slash = rest.indexOf('/')
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  if (!trustDomain || trustDomain.length > 255 || !TRUST_DOMAIN.test(trustDomain)) return null
  let namespace: string | null = null
  let serviceAccount: string | null = null
  if (path) {
    const segs = path.slice(1).split('/')
    for (const s of segs) if (!s || s === '.' || s === '..' || !SEGMENT.test(s)) return null
    if (segs.length === 4 && segs[0] === 'ns' && segs[2] === 'sa') {
      namespace = segs[1]!
      serviceAccount = segs[3]!
    }
  }
  return { trustDomain, path, namespace, serviceAccount, uri }
}

export function isSpiffeId(uri: string): boolean {
  return parseSpiffeId(uri) !== null
}

export function formatSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const uri = `${PREFIX}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`
  if (!parseSpiffeId(uri)) throw new TypeError(`not a valid SPIFFE ID: ${uri}`)
  return uri
}
