import type http from 'node:http'
import type { TLSSocket } from 'node:tls'
import { peerIdentityFromCert, type SpiffeId } from '../../proxy/identity/index.js'
import { CpError } from './errors.js'

export const MAX_BODY = 4 * 1024 * 1024

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

export function sendError(res: http.ServerResponse, err: CpError): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message }, ...err.extra })
}

export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length
    if (n > MAX_BODY) throw new CpError('REMORA_ERR_CP_BAD_REQUEST', `body larger than ${MAX_BODY} bytes`)
    chunks.push(c)
  }
  if (n === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new CpError('REMORA_ERR_CP_BAD_REQUEST', 'body is not JSON')
  }
}

/**
 * Per connection: a TLS 1.3 peer cannot change its certificate mid-connection, and
 * getPeerCertificate() (a full X.509 → object conversion) was a top cost of every ACK.
 */
const peers = new WeakMap<TLSSocket, SpiffeId>()

/** The caller's workload identity from its verified client certificate, or a 401. */
export function peerOf(req: http.IncomingMessage, trustDomains: ReadonlySet<string>): SpiffeId {
  const sock = req.socket as TLSSocket
  if (!sock.authorized) throw new CpError('REMORA_ERR_CP_CLIENT_CERT_REQUIRED', sock.authorizationError ? String(sock.authorizationError) : undefined)
  const known = peers.get(sock)
  if (known) return known
  const r = peerIdentityFromCert(sock.getPeerCertificate(), trustDomains)
  if (!r.ok) throw new CpError('REMORA_ERR_CP_CLIENT_CERT_REQUIRED', r.reason)
  peers.set(sock, r.identity)
  return r.identity
}

export function peerCertExpiry(req: http.IncomingMessage): string | null {
  const c = (req.socket as TLSSocket).getPeerCertificate()
  return c && c.valid_to ? new Date(c.valid_to).toISOString() : null
}
