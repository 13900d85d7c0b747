import https from 'node:https'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { InjectConfig } from './config.js'
import { InjectError, isInjectError } from './errors.js'
import { reviewAdmission } from './admission.js'
import type { Logger } from '../deps.js'

// The mutating admission webhook: HTTPS (the API server requires it) with its own certificate,
// POST /inject with an AdmissionReview, GET /healthz for the probes. Stateless, so any number of
// replicas can serve; failurePolicy in the webhook configuration decides what happens when none can.

/** The webhook logs at info, warn and error only: any Logger (control-plane/deps.ts) will do. */
export type WebhookLogger = Pick<Logger, 'info' | 'warn' | 'error'>

export interface WebhookOptions {
  readonly host: string
  readonly port: number
  readonly certPem: string
  readonly keyPem: string
  readonly config: InjectConfig
}

export const WEBHOOK_PATH = '/inject'
const MAX_BODY = 8 * 1024 * 1024

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length
    if (n > MAX_BODY) return null
    chunks.push(c)
  }
  return Buffer.concat(chunks)
}

export class InjectionWebhook {
  readonly #server: https.Server
  readonly #logger: WebhookLogger
  #config: InjectConfig

  private constructor(server: https.Server, config: InjectConfig, logger: WebhookLogger) {
    this.#server = server
    this.#config = config
    this.#logger = logger
  }

  static async start(o: WebhookOptions, deps: { logger: WebhookLogger }): Promise<InjectionWebhook> {
    const server = https.createServer({ cert: o.certPem, key: o.keyPem, minVersion: 'TLSv1.2' })
    const hook = new InjectionWebhook(server, o.config, deps.logger)
    server.on('request', (req, res) => void hook.#handle(req, res))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(o.port, o.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return hook
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port
  }

  /** New certificates for new handshakes (a renewed Secret), without dropping the listener. */
  setCertificate(certPem: string, keyPem: string): void {
    this.#server.setSecureContext({ cert: certPem, key: keyPem })
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    try {
      if (req.method === 'GET' && (path === '/healthz' || path === '/ready')) return send(res, 200, { ok: true })
      if (path !== WEBHOOK_PATH) return send(res, 404, { error: 'not found' })
      if (req.method !== 'POST') return send(res, 405, { error: 'POST an AdmissionReview' })
      const body = await readBody(req)
      if (body === null) return send(res, 413, { error: `body larger than ${MAX_BODY} bytes` })
      let json: unknown
      try {
        json = JSON.parse(body.toString('utf8'))
      } catch {
        throw new InjectError('REMORA_ERR_INJECT_BAD_REVIEW', 'the body is not JSON')
      }
      const r = reviewAdmission(json, this.#config)
      const reqInfo = (json as { request?: { namespace?: string; uid?: string } }).request
      this.#logger.info({ event: 'admission', uid: reqInfo?.uid, namespace: reqInfo?.namespace, outcome: r.outcome, allowed: r.review.response.allowed }, 'admission review')
      send(res, 200, r.review)
    } catch (err) {
      if (isInjectError(err)) {
        this.#logger.warn({ event: 'admission_bad_request', code: err.code }, err.message)
        return send(res, err.status, { error: { code: err.code, message: err.message } })
      }
      this.#logger.error({ event: 'admission_error', err: String(err) }, 'admission review failed')
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
