import http from 'node:http'
import { WebSocket, WebSocketServer } from 'ws'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { mtlsRequest, plainRequest, rawExchange, startPair, until, type TestSidecar } from '../helpers/mesh.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

let pki: TestPki
let app: Upstream
let payments: TestSidecar
let orders: TestSidecar

const MiB = 1024 * 1024

// The app: /upload counts bytes, /download/N streams N MiB, /trailers sends trailers, /ws upgrades.
function appHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? '/'
  if (url === '/upload') {
    let n = 0
    req.on('data', (c: Buffer) => (n += c.length))
    req.on('end', () => res.end(String(n)))
    return
  }
  if (url.startsWith('/download/')) {
    const mib = Number(url.split('/')[2])
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    let left = (mib * MiB) / chunk.length
    res.writeHead(200, { 'content-length': mib * MiB })
    const pump = (): void => {
      while (left > 0) {
        left--
        if (!res.write(chunk)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
    return
  }
  if (url === '/trailers') {
    res.writeHead(200, { trailer: 'x-checksum', 'content-type': 'text/plain' })
    res.write('body')
    res.addTrailers({ 'x-checksum': 'abc123' })
    res.end()
    return
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }))
}

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream(appHandler)
  const wss = new WebSocketServer({ noServer: true })
  app.server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m, isBinary) => ws.send(isBinary ? m : `echo:${String(m)}`)))
  })
  ;({ payments, orders } = await startPair({ pki, app: app.address }))
})

afterAll(async () => {
  await orders?.close()
  await payments?.close()
  await app?.close()
})

describe('request smuggling: ambiguous framing gets 400 and never reaches the app', () => {
  const cases: [string, string, number][] = [
    ['Content-Length with Transfer-Encoding', 'POST /x HTTP/1.1\r\nHost: payments\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['two Content-Lengths', 'POST /x HTTP/1.1\r\nHost: payments\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 400],
    ['obs-fold', 'GET /x HTTP/1.1\r\nHost: payments\r\nX-A: a\r\n  folded\r\n\r\n', 400],
    ['a bad chunk', 'POST /x HTTP/1.1\r\nHost: payments\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 400],
    ['two Host headers', 'GET /x HTTP/1.1\r\nHost: payments\r\nHost: evil\r\n\r\n', 400],
    ['Transfer-Encoding other than chunked', 'POST /x HTTP/1.1\r\nHost: payments\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501],
    ['space before the colon', 'GET /x HTTP/1.1\r\nHost : payments\r\n\r\n', 400],
  ]
  for (const [name, raw, status] of cases) {
    test(`outbound: ${name} → ${status}`, async () => {
      const hits = app.hits
      const out = await rawExchange(orders.outbound, raw, { waitMs: 1000 })
      expect(out.split('\r\n')[0]).toBe(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`)
      expect(out).toMatch(/x-remora-response-flags: DPE/i)
      expect(app.hits).toBe(hits)
    })
    test(`inbound (mTLS): ${name} → ${status}`, async () => {
      const hits = app.hits
      const client = await pki.issue('spiffe://cluster.local/ns/shop/sa/orders')
      const out = await rawExchange(payments.inbound, raw, { waitMs: 1000, tls: { ca: pki.caPem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined } })
      expect(out.split('\r\n')[0]).toBe(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`)
      expect(app.hits).toBe(hits)
    })
  }

  test('the refusal is in the access log with flag DPE', async () => {
    await rawExchange(orders.outbound, cases[0]![1], { waitMs: 1000 })
    await until(() => orders.accessLog.some((l) => l.error_code === 'REMORA_ERR_BAD_FRAMING'))
    expect(orders.accessLog.find((l) => l.error_code === 'REMORA_ERR_BAD_FRAMING')!.response_flags).toBe('DPE')
  })

  test('a header block over 60 KiB → 431; just under passes', async () => {
    const hits = app.hits
    const big = await plainRequest(orders.outbound, { headers: { host: 'payments', 'x-big': 'a'.repeat(61 * 1024) } }).catch(() => null)
    expect(big?.status).toBe(431)
    expect(app.hits).toBe(hits)
    const ok = await plainRequest(orders.outbound, { headers: { host: 'payments', 'x-big': 'a'.repeat(40 * 1024) } })
    expect(ok.status).toBe(200)
  })
})

describe('faithful proxying', () => {
  test('chunked request bodies stream and are counted', async () => {
    const res = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: orders.outbound, method: 'POST', path: '/upload', headers: { host: 'payments' }, agent: false }, (r) => {
        let d = ''
        r.on('data', (c: Buffer) => (d += c))
        r.on('end', () => resolve(d))
      })
      req.on('error', reject)
      req.write('hello ')
      req.end('world')
    })
    expect(res).toBe('11')
  })

  test('response trailers pass through the pair', async () => {
    const trailers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: orders.outbound, path: '/trailers', headers: { host: 'payments', te: 'trailers' }, agent: false }, (r) => {
          r.resume()
          r.on('end', () => resolve(r.trailers))
        })
        .on('error', reject)
    })
    expect(trailers['x-checksum']).toBe('abc123')
  })

  test('Expect: 100-continue gets 100 from the sidecar, then the body flows', async () => {
    const out = await new Promise<{ continued: boolean; body: string }>((resolve, reject) => {
      let continued = false
      const req = http.request({ host: '127.0.0.1', port: orders.outbound, method: 'POST', path: '/upload', headers: { host: 'payments', expect: '100-continue', 'content-length': 5 }, agent: false }, (r) => {
        let d = ''
        r.on('data', (c: Buffer) => (d += c))
        r.on('end', () => resolve({ continued, body: d }))
      })
      req.on('continue', () => {
        continued = true
        req.end('12345')
      })
      req.on('error', reject)
    })
    expect(out).toEqual({ continued: true, body: '5' })
  })

  test('a WebSocket echo works through the pair', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${orders.outbound}/ws`, { headers: { host: 'payments' } })
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('ping'))
      ws.on('message', (m) => resolve(String(m)))
      ws.on('error', reject)
    })
    expect(reply).toBe('echo:ping')
    ws.close()
    await until(() => payments.accessLog.some((l) => l.path === '/ws' && l.response_code === 101))
  })

  test('an Upgrade other than websocket (h2c) is served as a plain request without the upgrade', async () => {
    const res = await plainRequest(orders.outbound, { path: '/json', headers: { host: 'payments', connection: 'upgrade, http2-settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAAP__' } })
    expect(res.status).toBe(200)
    const h = JSON.parse(res.body).headers as Record<string, string>
    expect(h.upgrade).toBeUndefined()
    expect(h['http2-settings']).toBeUndefined()
  })

  test('x-request-id from the app is kept end to end', async () => {
    const res = await plainRequest(orders.outbound, { headers: { host: 'payments', 'x-request-id': 'abc-123' } })
    expect(JSON.parse(res.body).headers['x-request-id']).toBe('abc-123')
    await until(() => payments.accessLog.some((l) => l.request_id === 'abc-123'))
  })

  test('the app’s response headers come back; hop-by-hop ones do not', async () => {
    const res = await mtlsRequest(payments.inbound, await pki.issue('spiffe://cluster.local/ns/shop/sa/orders'), pki.caPem, { path: '/json' })
    expect(res.refused === false && res.headers['content-type']).toBe('application/json')
  })
})
