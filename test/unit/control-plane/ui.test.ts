// control-plane/ui: the web view's static assets over a real HTTP server: the strict CSP, nosniff,
// no inline script or style in the page, the Jaeger base from --jaeger-ui, and no data in any asset.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { UI_CSP, createUi, parseJaegerUi } from '../../../control-plane/ui/index.js'

let server: http.Server
let base: string

beforeAll(async () => {
  const ui = createUi({ jaegerUi: 'http://127.0.0.1:16686' })
  server = http.createServer((req, res) => {
    if (!ui.serve(new URL(req.url ?? '/', 'http://x').pathname, res)) {
      res.writeHead(418)
      res.end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

describe('the web view', () => {
  test.each([
    ['/ui/', 'text/html; charset=utf-8'],
    ['/ui/graph.js', 'text/javascript; charset=utf-8'],
    ['/ui/graph.css', 'text/css; charset=utf-8'],
    ['/ui/config.json', 'application/json'],
    ['/ui/favicon.svg', 'image/svg+xml'],
  ])('%s is served with its type, the strict CSP and nosniff', async (path, type) => {
    const r = await fetch(`${base}${path}`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe(type)
    expect(r.headers.get('content-security-policy')).toBe(UI_CSP)
    expect(r.headers.get('x-content-type-options')).toBe('nosniff')
    expect(r.headers.get('x-frame-options')).toBe('DENY')
    expect(r.headers.get('referrer-policy')).toBe('no-referrer')
  })

  test("the CSP allows only this origin and forbids inline script, framing and form posts", () => {
    expect(UI_CSP).toMatch(/^default-src 'self';/)
    expect(UI_CSP).not.toMatch(/unsafe-inline|unsafe-eval|\*/)
    expect(UI_CSP).toContain("frame-ancestors 'none'")
    expect(UI_CSP).toContain("form-action 'none'")
  })

  test('the page has no inline script, no inline style, no data, and its script never uses innerHTML', async () => {
    const html = await (await fetch(`${base}/ui/`)).text()
    expect(html).toMatch(/<script type="module" src="graph.js"><\/script>/)
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]+<\/script>|\son[a-z]+=|style=|<style/i)
    expect(html).not.toMatch(/spiffe:|remora_/)
    const source = readFileSync(new URL('../../../control-plane/ui/assets/graph.js', import.meta.url), 'utf8')
    const js = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
    expect(js).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/)
    expect(js).toContain("sessionStorage.getItem(TOKEN_KEY)")
    expect(js).toMatch(/authorization: `Bearer \$\{token\}`/)
  })

  test('config.json carries the Jaeger UI base (null when --jaeger-ui is absent)', async () => {
    expect(await (await fetch(`${base}/ui/config.json`)).json()).toEqual({ jaegerUi: 'http://127.0.0.1:16686' })
    const res = { writeHead: () => res, end: (b: Buffer) => (res.body = b.toString()), body: '' }
    createUi({ jaegerUi: null }).serve('/ui/config.json', res as unknown as http.ServerResponse)
    expect(JSON.parse(res.body)).toEqual({ jaegerUi: null })
  })

  test('/ui redirects to /ui/; an unknown asset is a 404 with the same headers; other paths are not the view', async () => {
    const r = await fetch(`${base}/ui`, { redirect: 'manual' })
    expect(r.status).toBe(308)
    expect(r.headers.get('location')).toBe('/ui/')
    const n = await fetch(`${base}/ui/admin.json`)
    expect(n.status).toBe(404)
    expect(n.headers.get('content-security-policy')).toBe(UI_CSP)
    expect((await fetch(`${base}/uix`)).status).toBe(418)
  })
})

describe('--jaeger-ui', () => {
  test('an http(s) base, trailing slashes dropped', () => {
    expect(parseJaegerUi('http://127.0.0.1:16686/')).toBe('http://127.0.0.1:16686')
    expect(parseJaegerUi('https://jaeger.example.org/jaeger//')).toBe('https://jaeger.example.org/jaeger')
  })

  test.each([['javascript:alert(1)'], ['not a url'], ['https://user:pw@jaeger.example.org'], ['https://jaeger.example.org/?q=1'], ['ftp://jaeger.example.org']])('refused: %s', (v) => {
    expect(() => parseJaegerUi(v)).toThrow(/--jaeger-ui/)
  })
})
