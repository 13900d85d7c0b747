import https from 'node:https'
import { MESH_GROUPS } from '../identity/index.js'
import { splitAddress } from '../engines/common/index.js'
import { secureNamingCheck } from '../tls/index.js'

/** The certificate the transport presents (mTLS routes) and the trust bundle it adds to the configured CA. */
export interface TransportIdentity {
  readonly certPem: string
  readonly keyPem: string
  readonly trustBundle: string
}

export interface TransportOptions {
  /** PEM bundle that authenticates the control plane at bootstrap (and until the first trust bundle). */
  readonly caPem: string
  readonly controlPlaneIdentity: string
  /** The current identity (null before bootstrap). */
  readonly identity: () => TransportIdentity | null
}

export interface StreamHandlers {
  /** The stream is open (HTTP 200). */
  onOpen(): void
  /** One non-empty NDJSON line. */
  onFrame(line: string): void
}

/**
 * HTTPS to the control plane: TLS 1.3 only, the server checked against the control plane's SPIFFE
 * ID (secure naming); JSON POSTs (bootstrap without a client certificate, the rest with it) on a
 * small keep-alive agent, and the long-lived NDJSON snapshot stream on a connection of its own.
 */
export class ControlPlaneTransport {
  #agent: https.Agent | null = null
  #stream: { destroy(): void } | null = null

  constructor(private readonly o: TransportOptions) {}

  #tlsOptions(withClientCert: boolean): https.AgentOptions & https.RequestOptions {
    const id = this.o.identity()
    return {
      ca: id ? `${this.o.caPem}\n${id.trustBundle}` : this.o.caPem,
      ...(withClientCert && id ? { cert: id.certPem, key: id.keyPem } : {}),
      minVersion: 'TLSv1.3',
      ecdhCurve: MESH_GROUPS,
      checkServerIdentity: secureNamingCheck([this.o.controlPlaneIdentity]),
    } as https.AgentOptions & https.RequestOptions
  }

  #agentFor(): https.Agent {
    if (!this.#agent) this.#agent = new https.Agent({ keepAlive: true, maxSockets: 2, ...this.#tlsOptions(true) })
    return this.#agent
  }

  /** A new certificate: the next requests handshake with it. */
  resetAgent(): void {
    this.#agent?.destroy()
    this.#agent = null
  }

  /** POSTs `body` as JSON; resolves with the status and the parsed JSON (null when the body is not JSON). */
  request(address: string, path: string, body: unknown, o: { mtls: boolean; timeoutMs?: number }): Promise<{ status: number; json: unknown }> {
    const { host, port } = splitAddress(address)
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify(body)
      const req = https.request(
        {
          host,
          port,
          path,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          ...(o.mtls ? { agent: this.#agentFor() } : { agent: false, ...this.#tlsOptions(false) }),
          timeout: o.timeoutMs ?? 10_000,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            let json: unknown = null
            try {
              json = JSON.parse(Buffer.concat(chunks).toString())
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode ?? 0, json })
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timeout'), { code: 'ETIMEDOUT' })))
      req.on('error', reject)
      req.end(payload)
    })
  }

  /**
   * Opens the snapshot stream and resolves when it ends: true when at least one frame arrived (the
   * caller's backoff resets). A stream with no frame (not even a ping) for `idleMs` is cut.
   */
  openStream(address: string, body: unknown, idleMs: number, h: StreamHandlers): Promise<boolean> {
    const { host, port } = splitAddress(address)
    const payload = JSON.stringify(body)
    return new Promise((resolve, reject) => {
      let frames = false
      let idle: NodeJS.Timeout | null = null
      const req = https.request(
        {
          host,
          port,
          path: '/v1/stream',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          ...this.#tlsOptions(true),
        },
        (res) => {
          if (res.statusCode !== 200) {
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () => reject(Object.assign(new Error(`stream refused: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 300)}`), { code: `HTTP_${res.statusCode}` })))
            return
          }
          const touch = (): void => {
            if (idle) clearTimeout(idle)
            idle = setTimeout(() => req.destroy(Object.assign(new Error('stream idle'), { code: 'ESTREAMIDLE' })), idleMs)
          }
          touch()
          h.onOpen()
          let buf = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            touch()
            buf += chunk
            let nl: number
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl)
              buf = buf.slice(nl + 1)
              if (line.trim()) {
                frames = true
                h.onFrame(line)
              }
            }
          })
          const done = (): void => {
            if (idle) clearTimeout(idle)
            this.#stream = null
            resolve(frames)
          }
          res.on('end', done)
          res.on('close', done)
          res.on('error', done)
        },
      )
      this.#stream = req
      req.on('error', (err) => {
        if (idle) clearTimeout(idle)
        this.#stream = null
        if (frames) resolve(true)
        else reject(err)
      })
      req.end(payload)
    })
  }

  close(): void {
    this.#stream?.destroy()
    this.resetAgent()
  }
}

