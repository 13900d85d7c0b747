import { existsSync, readFileSync } from 'node:fs'
import type http from 'node:http'
import { fileURLToPath } from 'node:url'

// The web view's static assets, served without authentication: they hold no data. The page's
// script asks for the admin token and calls the API with it, like the CLI. A strict CSP (no inline
// script or style, nothing from another origin, no framing, no form posts) and nosniff.

export const UI_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"

const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/ui/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/graph.js': { file: 'graph.js', type: 'text/javascript; charset=utf-8' },
  '/ui/graph.css': { file: 'graph.css', type: 'text/css; charset=utf-8' },
  '/ui/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
}

/** Where the assets are: beside this file (sources, and dist/ where `npm run build` copies them), else in the source tree beside dist/. */
function assetsDir(): string | null {
  for (const rel of ['./assets/', '../../../control-plane/ui/assets/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(`${dir}index.html`)) return dir
  }
  return null
}

export interface UiOptions {
  /** Jaeger's UI base URL (`--jaeger-ui`): edges link to `<base>/trace/<traceId>`; null: no link. */
  readonly jaegerUi: string | null
}

export interface Ui {
  /** Answers GET /ui, /ui/… ; false when the path is not the web view's. */
  serve(path: string, res: http.ServerResponse): boolean
}

/** `--jaeger-ui` checked once: an absolute http(s) URL without credentials, query or fragment; trailing slashes dropped. */
export function parseJaegerUi(v: string): string {
  let u: URL
  try {
    u = new URL(v)
  } catch {
    throw new Error(`--jaeger-ui: "${v}" is not a URL`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('--jaeger-ui: expected an http:// or https:// URL')
  if (u.username || u.password) throw new Error('--jaeger-ui: a URL with credentials would be shown to every viewer')
  if (u.search || u.hash) throw new Error('--jaeger-ui: expected the UI base, without query or fragment (links are <base>/trace/<traceId>)')
  return u.href.replace(/\/+$/, '')
}

const HEADERS = {
  'content-security-policy': UI_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-cache',
}

/** The assets are read once, at the first request, then served from memory. */
export function createUi(o: UiOptions): Ui {
  let files: Map<string, Buffer> | null | undefined
  const config = Buffer.from(`${JSON.stringify({ jaegerUi: o.jaegerUi })}\n`)
  const load = (): Map<string, Buffer> | null => {
    if (files !== undefined) return files
    const dir = assetsDir()
    files = dir ? new Map(Object.entries(ASSETS).map(([p, a]) => [p, readFileSync(`${dir}${a.file}`)])) : null
    return files
  }
  const send = (res: http.ServerResponse, status: number, type: string, body: Buffer): void => {
    res.writeHead(status, { ...HEADERS, 'content-type': type, 'content-length': body.length })
    res.end(body)
  }
  return {
    serve(path, res) {
      if (path !== '/ui' && !path.startsWith('/ui/')) return false
      if (path === '/ui' || path === '/ui/index.html') {
        res.writeHead(308, { ...HEADERS, location: '/ui/', 'content-length': 0 })
        res.end()
        return true
      }
      if (path === '/ui/config.json') {
        send(res, 200, 'application/json', config)
        return true
      }
      const asset = ASSETS[path]
      const loaded = asset ? load() : null
      const body = asset ? loaded?.get(path) : undefined
      if (!asset || !body) {
        const msg = asset ? 'the web view is not installed here (control-plane/ui/assets missing)\n' : 'not found\n'
        send(res, 404, 'text/plain; charset=utf-8', Buffer.from(msg))
        return true
      }
      send(res, 200, asset.type, body)
      return true
    },
  }
}
