// How the admin CLI commands (apply, get, delete, status, token, check --server) reach the control
// plane: --server/--token/--ca flags, else REMORA_SERVER/REMORA_TOKEN/REMORA_CA, else the admin file
// the control plane wrote at its first start (REMORA_CONFIG or ~/.config/remora/admin.json).
// The token goes in the Authorization header only; it is never printed or logged.
import { readFileSync } from 'node:fs'
import https from 'node:https'
import { defaultAdminFile } from '../control-plane/main.js'
import { secureNamingCheck } from '../proxy/tls/index.js'
import { z } from 'zod'
import type { ObservedEdge } from '../control-plane/replay/index.js'
import { TrafficEdgeSchema } from '../proxy/snapshot/index.js'
import { UsageError, UsageError as AdminUsageError, isUsageError } from './errors.js'

export interface AdminTarget {
  readonly server: string
  readonly token: string
  readonly caPem: string
  readonly identity: string | null
}

/** Bad usage of an admin command (the same code as every usage error). */
export { UsageError as AdminUsageError, isUsageError }

export const ADMIN_FLAGS = {
  server: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
} as const

export const ADMIN_FLAGS_HELP = `Server: --server https://host:port --token T --ca ca.pem, or REMORA_SERVER / REMORA_TOKEN /
REMORA_CA, or the admin file written by the control plane's first start ($REMORA_CONFIG or
~/.config/remora/admin.json).`

export function resolveTarget(v: { server?: string; token?: string; ca?: string }, env: NodeJS.ProcessEnv = process.env): AdminTarget {
  let file: { server?: string; token?: string; caPem?: string; identity?: string } = {}
  try {
    file = JSON.parse(readFileSync(defaultAdminFile(env), 'utf8')) as typeof file
  } catch {
    /* no admin file: flags or env must say it all */
  }
  // An empty variable counts as unset.
  const server = v.server || env.REMORA_SERVER || file.server
  const token = v.token || env.REMORA_TOKEN || file.token
  const caFile = v.ca || env.REMORA_CA
  let caPem = file.caPem
  if (caFile) {
    try {
      caPem = readFileSync(caFile, 'utf8')
    } catch (err) {
      throw new AdminUsageError(`--ca: cannot read ${caFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  if (!server) throw new AdminUsageError('no control plane: give --server (or REMORA_SERVER, or run where the admin file is)')
  if (!token) throw new AdminUsageError('no admin token: give --token (or REMORA_TOKEN, or the admin file)')
  if (!caPem) throw new AdminUsageError('no CA for the control plane: give --ca (or REMORA_CA, or the admin file)')
  return { server: server.startsWith('https://') ? server : `https://${server}`, token, caPem, identity: file.identity ?? null }
}

export interface ApiReply {
  status: number
  json: { error?: { code: string; message: string }; [k: string]: unknown }
}

export function callApi(t: AdminTarget, method: string, path: string, body?: unknown): Promise<ApiReply> {
  const url = new URL(path, t.server)
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const checkIdentity = t.identity
    ? secureNamingCheck([t.identity])
    : (_h: string, cert: { subjectaltname?: string }) => (/URI:spiffe:\/\/[^,]+\/sa\/remora-control-plane(,|$)/.test(cert.subjectaltname ?? '') ? undefined : new Error('the server is not a remora control plane'))
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        path: url.pathname + url.search,
        method,
        agent: false,
        ca: t.caPem,
        minVersion: 'TLSv1.3',
        checkServerIdentity: checkIdentity as never,
        headers: { authorization: `Bearer ${t.token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) as ApiReply['json'] })
          } catch {
            resolve({ status: res.statusCode ?? 0, json: { error: { code: 'REMORA_ERR_CP_INTERNAL', message: 'non-JSON reply' } } })
          }
        })
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

/** Prints `code: message` for an API error; exit code 1. */
export function apiFailure(cmd: string, r: ApiReply): number {
  console.error(`remora ${cmd}: ${r.json.error?.code ?? `HTTP ${r.status}`}: ${r.json.error?.message ?? 'request failed'}`)
  return 1
}

export const KIND_ALIASES: Record<string, string> = {
  authorizationpolicy: 'AuthorizationPolicy',
  authorizationpolicies: 'AuthorizationPolicy',
  ap: 'AuthorizationPolicy',
  peerauthentication: 'PeerAuthentication',
  peerauthentications: 'PeerAuthentication',
  pa: 'PeerAuthentication',
  requestauthentication: 'RequestAuthentication',
  requestauthentications: 'RequestAuthentication',
  ra: 'RequestAuthentication',
}

// --- the traffic record (GET /v1/traffic): graph, suggest, check --replay -------------------------

const ObservedEdgeSchema = z.object({
  ...TrafficEdgeSchema.shape,
  destination: z.object({ principal: z.string().max(512), namespace: z.string().max(63), workload: z.string().max(253) }),
})
const TrafficReplySchema = z.object({
  edges: z.array(ObservedEdgeSchema),
  window: z.object({ from: z.union([z.number(), z.string()]), to: z.union([z.number(), z.string()]) }),
})

/** The record's edges and the window they cover (ms since the epoch). */
export interface TrafficView {
  readonly edges: ObservedEdge[]
  readonly window: { readonly from: number; readonly to: number }
}

/** `--since` as the API takes it: a duration (`90s`, `30m`, `24h`, `7d`). */
export function parseSince(v: string | undefined): string {
  if (v === undefined) return '24h'
  if (!/^[1-9][0-9]{0,6}(s|m|h|d)$/.test(v)) throw new AdminUsageError(`--since: expected a duration like 30m, 24h or 7d, got "${v}"`)
  return v
}

const toMs = (v: number | string): number => (typeof v === 'number' ? v : Date.parse(v))

/** The traffic record from the control plane, checked against the wire contract (a reply that is not is an error, never half-read). */
export async function fetchTraffic(t: AdminTarget, q: { namespace?: string; workload?: string; since: string }): Promise<TrafficView | ApiReply> {
  const params = new URLSearchParams()
  if (q.namespace) params.set('namespace', q.namespace)
  if (q.workload) params.set('workload', q.workload)
  params.set('since', q.since)
  const r = await callApi(t, 'GET', `/v1/traffic?${params}`)
  if (r.status !== 200) return r
  const parsed = TrafficReplySchema.safeParse(r.json)
  if (!parsed.success) {
    const i = parsed.error.issues[0]!
    throw new Error(`the control plane's /v1/traffic reply does not match the traffic record's contract: ${i.path.join('.')}: ${i.message}`)
  }
  return { edges: parsed.data.edges, window: { from: toMs(parsed.data.window.from), to: toMs(parsed.data.window.to) } }
}

export const isApiReply = (v: TrafficView | ApiReply): v is ApiReply => 'status' in v
