/* eslint-disable @typescript-eslint/no-explicit-any -- API server JSON: each caller reads the few fields it needs */
import http from 'node:http'
import https from 'node:https'
import { createInterface } from 'node:readline'
import { RemoraError } from '../../proxy/errors/index.js'

// The few calls the Kubernetes source makes, over node:http(s): JSON requests and watch streams
// (one JSON event per line of a chunked response). Credentials come from a kubeconfig or the
// in-cluster service account through @kubernetes/client-node (fromKubeConfig), never logged.

export interface KubeConnection {
  /** https://10.96.0.1:443, or http://127.0.0.1:PORT in tests. */
  readonly server: string
  /** Extra request options: headers (Authorization), ca, cert, key… */
  readonly options?: https.RequestOptions
}

export interface KubeResponse {
  readonly status: number
  readonly body: any
}

export interface WatchStream {
  /** Resolves when the server ends the stream, or rejects on a transport error. */
  readonly done: Promise<void>
  close(): void
}

/** A non-2xx answer from the API server: `status` is the API server's (410 Gone, 404, 409…). */
export class KubeApiError extends RemoraError<'REMORA_ERR_KUBE_API'> {
  constructor(status: number, message: string) {
    super('REMORA_ERR_KUBE_API', status, message)
  }
}

export interface KubeClient {
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<KubeResponse>
  /** Rejects on a non-200 answer; `signal` aborts a watch that is still connecting. */
  watch(path: string, onEvent: (event: { type: string; object: any }) => void, signal?: AbortSignal): Promise<WatchStream>
}

export function createKubeClient(conn: KubeConnection): KubeClient {
  const base = new URL(conn.server)
  const mod = base.protocol === 'https:' ? https : http
  const open = (method: string, path: string, headers: Record<string, string>, signal?: AbortSignal) =>
    mod.request({
      ...(signal ? { signal } : {}),
      ...conn.options,
      protocol: base.protocol,
      hostname: base.hostname,
      port: base.port,
      method,
      path: `${base.pathname.replace(/\/$/, '')}${path}`,
      headers: { ...(conn.options?.headers as Record<string, string> | undefined), accept: 'application/json', ...headers },
    })
  return {
    request(method, path, body, contentType = 'application/json') {
      return new Promise((resolve, reject) => {
        const text = body === undefined ? undefined : JSON.stringify(body)
        const req = open(method, path, text === undefined ? {} : { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)) })
        req.on('response', (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8')
            let json: unknown = null
            try {
              json = raw ? JSON.parse(raw) : null
            } catch {
              json = { message: raw.slice(0, 200) }
            }
            resolve({ status: res.statusCode ?? 0, body: json })
          })
          res.on('error', reject)
        })
        req.on('error', reject)
        req.end(text)
      })
    },
    watch(path, onEvent, signal) {
      return new Promise((resolve, reject) => {
        const req = open('GET', path, {}, signal)
        req.on('response', (res) => {
          if (res.statusCode !== 200) {
            res.on('error', reject)
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () => {
              let msg = `watch ${path}: HTTP ${res.statusCode}`
              try {
                msg = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: string }).message ?? msg
              } catch {
                /* keep the status line */
              }
              reject(new KubeApiError(res.statusCode ?? 0, msg))
            })
            return
          }
          let finish!: () => void
          let failed!: (err: Error) => void
          const done = new Promise<void>((ok, fail) => {
            finish = ok
            failed = fail
          })
          const lines = createInterface({ input: res })
          lines.on('line', (line) => {
            if (line.trim() === '') return
            let event: { type: string; object: unknown }
            try {
              event = JSON.parse(line) as { type: string; object: unknown }
            } catch {
              failed(new KubeApiError(0, `watch ${path}: a line that is not JSON`))
              req.destroy()
              return
            }
            onEvent(event)
          })
          // The server ending the stream, a reset, or our own close(): the watch is over either way;
          // the reflector resumes from the last resourceVersion it saw.
          lines.on('close', () => finish())
          // readline re-emits its input's errors (a reset stream: 'aborted').
          lines.on('error', () => finish())
          res.on('close', () => finish())
          res.on('error', () => finish())
          req.on('error', () => finish())
          resolve({
            done,
            close: () => {
              req.destroy()
              finish()
            },
          })
        })
        req.on('error', reject)
        req.end()
      })
    },
  }
}

/** Connection from @kubernetes/client-node's KubeConfig (in-cluster service account, or ~/.kube/config). */
export async function connectionFromKubeConfig(kc: { getCurrentCluster(): { server: string } | null; applyToHTTPSOptions(o: https.RequestOptions): Promise<void> }): Promise<KubeConnection> {
  const cluster = kc.getCurrentCluster()
  if (!cluster) throw new KubeApiError(0, 'no current cluster in the kubeconfig')
  const options: https.RequestOptions = {}
  await kc.applyToHTTPSOptions(options)
  return { server: cluster.server, options }
}

/**
 * Credentials the way kubectl finds them, by @kubernetes/client-node: the pod's service account
 * (in-cluster), an explicit kubeconfig, or the default one ($KUBECONFIG, ~/.kube/config). Exec
 * and OIDC auth plugins work as in kubectl. Loaded lazily: only `--source kubernetes` pays for it.
 */
export async function loadKubeConnection(o: { inCluster?: boolean; kubeconfig?: string } = {}): Promise<KubeConnection> {
  const { KubeConfig } = await import('@kubernetes/client-node')
  const kc = new KubeConfig()
  if (o.inCluster) kc.loadFromCluster()
  else if (o.kubeconfig) kc.loadFromFile(o.kubeconfig)
  else kc.loadFromDefault()
  return connectionFromKubeConfig(kc)
}
