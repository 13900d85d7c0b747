// `remora check`: the request as the destination's inbound sidecar sees it when authorization runs.
// Instead of rebuilding the facts, this runs the sidecar's own stages on the CLI's request: the
// listener's context factory, `sanitize` (Host, path, header hygiene: hop-by-hop, x-remora-*,
// x-envoy-*, XFCC dropped) and `authnJwt` (token extraction and checks, JWT output headers), then
// the authz stage's `requestFacts`. Whatever those stages change, check decides on the same facts.
import type { JwtAuthenticator, JwtOutcome } from '../../proxy/authn/index.js'
import { createContext, setConnectionInfo } from '../../proxy/engines/common/index.js'
import type { PeerIdentity } from '../../proxy/identity/index.js'
import { isProxyError, type RequestContext } from '../../proxy/pipeline/index.js'
import type { PathNormalization, RequestFacts } from '../../proxy/policy/index.js'
import { createAuthnJwtStage, createSanitizeStage, requestFacts } from '../../proxy/stages/index.js'
// node:http's `req.headers` from raw header lines, as the raw engine builds it for the stages.
import { headersObject } from '../../proxy/engines/raw/headers.js'

export interface CheckRequestInput {
  readonly method: string
  /** --path as given: origin-form, with its query. */
  readonly target: string
  /** Header lines as `req.rawHeaders` (Host first). */
  readonly rawHeaders: readonly string[]
  readonly peer: PeerIdentity | null
  readonly sourceIp: string
  readonly destinationPort: number
  readonly pathNormalization: PathNormalization
  /** The workload's JWT rules, or null: no authnJwt stage (as at a sidecar without RequestAuthentication). */
  readonly authenticator: JwtAuthenticator | null
}

export type CheckRequestView =
  | { readonly ok: true; readonly facts: RequestFacts; readonly jwt: JwtOutcome | null }
  /** The sidecar answers before authorization: 400 (path, Host), 401 (token), 405/501 (method, framing). */
  | { readonly ok: false; readonly status: number; readonly code: string; readonly reason: string; readonly jwt: JwtOutcome | null }

/** A response the stages never write to: check stops before any stage that answers. */
const NO_RESPONSE = {
  statusCode: 0,
  headersSent: false,
  destroyed: false,
  writeHead: () => undefined,
  end: () => undefined,
  destroy: () => undefined,
}

export async function checkRequestView(o: CheckRequestInput): Promise<CheckRequestView> {
  const socket = { remoteAddress: o.sourceIp, remotePort: 0, localPort: o.destinationPort }
  setConnectionInfo(socket, { peer: o.peer, security: o.peer ? 'mutual_tls' : 'none' })
  const req = { method: o.method, url: o.target, headers: headersObject(o.rawHeaders), rawHeaders: o.rawHeaders, httpVersion: '1.1', socket }
  const ctx = createContext('inbound', req, NO_RESPONSE, null)
  let jwt: JwtOutcome | null = null
  let reached: RequestContext | null = null
  const chain = createSanitizeStage({ direction: 'inbound', pathNormalization: o.pathNormalization, ownId: 'spiffe://remora-check/cli' })(
    createAuthnJwtStage({ authenticator: o.authenticator, onResult: (_c, out) => void (jwt = out) })(async (c) => void (reached = c)),
  )
  try {
    await chain(ctx)
  } catch (err) {
    if (!isProxyError(err)) throw err
    return { ok: false, status: err.status, code: err.code, reason: err.message, jwt }
  }
  if (reached === null) throw new Error('check: the sidecar stages did not reach authorization')
  return { ok: true, facts: requestFacts(reached, o.destinationPort), jwt }
}
