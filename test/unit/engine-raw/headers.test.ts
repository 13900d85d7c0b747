import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { chunkFrame, headerLines, headersObject, responseHeadFacts, trailerLines } from '../../../proxy/engines/raw/headers.js'

// The raw engine must hand stages the same `req.headers` as node:http: the reference is a real
// node:http server receiving the same bytes.
let server: http.Server
let port = 0
let last: { headers: http.IncomingHttpHeaders; raw: string[] } | null = null

beforeAll(async () => {
  server = http.createServer((req, res) => {
    last = { headers: req.headers, raw: req.rawHeaders }
    res.end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((r) => server.close(() => r()))
})

function send(head: string): Promise<{ headers: http.IncomingHttpHeaders; raw: string[] }> {
  last = null
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`GET / HTTP/1.1\r\n${head}Connection: close\r\n\r\n`))
    s.on('data', () => {})
    s.on('close', () => (last ? resolve(last) : reject(new Error('no request seen'))))
    s.on('error', reject)
  })
}

describe('headersObject: node:http semantics', () => {
  const cases: [string, string][] = [
    ['repeated ordinary field joined with ", "', 'Host: a\r\nX-A: 1\r\nX-A: 2\r\nx-a: 3\r\n'],
    ['first of host, content-type, authorization, user-agent kept', 'Host: a\r\nHost: b\r\nContent-Type: t/1\r\nContent-Type: t/2\r\nAuthorization: Bearer x\r\nAuthorization: Bearer y\r\nUser-Agent: u1\r\nUser-Agent: u2\r\n'],
    ['cookie joined with "; ", set-cookie a list', 'Host: a\r\nCookie: a=1\r\nCookie: b=2\r\nSet-Cookie: s=1\r\nSet-Cookie: t=2\r\n'],
    ['mixed case names', 'hOsT: a\r\nX-Request-ID: r\r\nTraceParent: 00-abc\r\n'],
    ['names that are Object.prototype members', 'Host: a\r\nConstructor: c\r\n__proto__: p\r\nToString: t\r\n'],
  ]
  for (const [name, head] of cases) {
    test(name, async () => {
      const seen = await send(head)
      expect({ ...headersObject(seen.raw) }).toEqual({ ...seen.headers })
    })
  }
})

describe('heads and frames', () => {
  test('responseHeadFacts drops hop-by-hop fields and those named in Connection, keeps framing facts', () => {
    const f = responseHeadFacts(['Content-Type', 'a/b', 'Connection', 'x-hop, keep-alive', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Trailer', 'x-sum', 'Content-Length', '3', 'X-Kept', 'yes'], null)
    expect(f.lines).toBe('Content-Type: a/b\r\nX-Kept: yes\r\n')
    expect([f.chunked, f.contentLength, f.keepAliveMs]).toEqual([true, '3', 5000])
  })

  test('headerLines refuses a value with a line break (header injection from a stage)', () => {
    expect(headerLines({ a: '1', b: ['2', '3'] })).toBe('a: 1\r\nb: 2\r\nb: 3\r\n')
    expect(() => headerLines({ a: 'x\r\nevil: 1' })).toThrow(/line break/)
  })

  test('chunk frames and trailers', () => {
    expect(Buffer.concat(chunkFrame(Buffer.from('hello world!'))).toString()).toBe('c\r\nhello world!\r\n')
    expect(trailerLines(['X-Sum', 'abc', 'Connection', 'close'])).toBe('X-Sum: abc\r\n')
  })
})
