// A real HTTP app on port 0 that counts hits and remembers what it received.
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SeenRequest {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  rawHeaders: string[]
}

export interface Upstream {
  port: number
  address: string
  hits: number
  requests: SeenRequest[]
  server: http.Server
  close(): Promise<void>
}

export type AppHandler = (req: IncomingMessage, res: ServerResponse) => void

export const echoHandler: AppHandler = (req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }))
}

export async function startUpstream(handler: AppHandler = echoHandler): Promise<Upstream> {
  const up: Upstream = {
    port: 0,
    address: '',
    hits: 0,
    requests: [],
    server: http.createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
      up.hits++
      up.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders })
      handler(req, res)
    }),
    async close() {
      up.server.closeAllConnections()
      await new Promise<void>((r) => up.server.close(() => r()))
    },
  }
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r))
  up.port = (up.server.address() as AddressInfo).port
  up.address = `127.0.0.1:${up.port}`
  return up
}

/** A port that nothing listens on (bound then released). */
export async function freePort(): Promise<number> {
  const s = http.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const p = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return p
}
