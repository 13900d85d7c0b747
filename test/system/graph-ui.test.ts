// The web view in headless Chromium (Debian's `chromium`, driven by playwright-core): a control plane
// whose traffic record real sidecars filled (frontend → orders → payments, a plaintext caller into
// frontend, denied calls from frontend to payments and from batch to orders), the page opened at
// /ui/, the admin token entered in its form. Asserted on the page's content, not on pixels: the
// nodes and edges with their numbers, the denied edges, a denied edge's panel with its rule and
// denial reason, the Jaeger link of a sampled trace, strings from the record rendered as text
// (never markup), the token never in the URL, no CSP violation. The screenshot in docs/images/graph.png
// comes from this mesh (REMORA_UPDATE_SCREENSHOT=1 rewrites it).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { chromium } from 'playwright-core'
import { buildGraph, formatMs, formatRate, formatRps } from '../../cli/commands/graph.js'
import type { ObservedEdge } from '../../control-plane/replay/index.js'
import type { TrafficReport } from '../../proxy/snapshot/index.js'
import { plainRequest } from '../helpers/mesh.js'
import { startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js'
import { latency } from '../helpers/traffic.js'

const CHROMIUM = '/usr/bin/chromium'
const JAEGER_UI = 'http://127.0.0.1:16686'
const SCREENSHOT = new URL('../../docs/images/graph.png', import.meta.url)
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const XSS_PATH = '/orders/<img src=x onerror="document.title=\'pwned\'">'
const XSS_REASON = 'deny by shop/x rules[0] <script>document.title="pwned"</script>'

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: orders-allow-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
      to: [{ operation: { methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: payments-allow-orders, namespace: shop }
spec:
  selector: { matchLabels: { app: payments } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/orders"] } }]
      to: [{ operation: { methods: ["POST"], paths: ["/charge"] } }]
`

let mesh: TrafficMesh
let browser: Browser
let context: BrowserContext
let page: Page
const problems: string[] = []

/** orders reports one more edge with its own certificate, through the control plane's own merge code. */
function reportAsOrders(report: TrafficReport): Promise<number> {
  const c = mesh.sidecars.orders.sidecar.creds.current
  const body = JSON.stringify(report)
  const port = Number(mesh.address.slice(mesh.address.lastIndexOf(':') + 1))
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/traffic', agent: false, ca: mesh.cp.caPem, cert: c.certPem, key: c.keyPem, checkServerIdentity: () => undefined, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

const edge = (from: string, to: string) => page.locator(`svg#graph g.edge[data-from="${from}"][data-to="${to}"]`)

async function openGraph(): Promise<void> {
  await page.goto(`https://${mesh.address}/ui/`)
  await page.locator('#login').waitFor({ state: 'visible' })
  await page.fill('#token', mesh.adminToken)
  await page.click('#login button[type=submit]')
  await page.locator('#view').waitFor({ state: 'visible' })
  // The last hour: the rates of a test's few minutes of traffic read as rates.
  await page.selectOption('#since', '1h')
  await page.click('#filters button[type=submit]')
  await expect.poll(() => page.locator('svg#graph g.edge').count()).toBeGreaterThan(0)
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the web view's test needs Debian's chromium (apt-get update && apt-get install -y chromium)`)
  mesh = await startTrafficMesh({ jaegerUi: JAEGER_UI })
  await mesh.apply(POLICIES)
  // A day of a small shop, compressed: reads, writes, charges, and two callers that are refused.
  for (let i = 0; i < 40; i++) expect(await mesh.call('frontend', 'orders', '/orders')).toBe(200)
  for (let i = 0; i < 25; i++) expect(await mesh.call('frontend', 'orders', `/orders/${1000 + i}`)).toBe(200)
  for (let i = 0; i < 8; i++) expect(await mesh.call('frontend', 'orders', '/orders', 'POST')).toBe(200)
  for (let i = 0; i < 8; i++) expect(await mesh.call('orders', 'payments', '/charge', 'POST')).toBe(200)
  for (let i = 0; i < 3; i++) expect(await mesh.call('frontend', 'payments', '/charge', 'POST')).toBe(403)
  for (let i = 0; i < 2; i++) expect(await mesh.call('batch', 'orders', '/orders/1000', 'DELETE')).toBe(403)
  for (let i = 0; i < 12; i++) expect((await plainRequest(mesh.sidecars.frontend.inbound, { path: '/', headers: { host: 'frontend.shop' } })).status).toBe(200)
  await mesh.report()
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  // The control plane's certificate is for its SPIFFE identity, from the mesh's own CA.
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1440, height: 900 } })
  page = await context.newPage()
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) problems.push(m.text())
  })
  page.on('pageerror', (e) => problems.push(e.message))
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await mesh?.close()
})

describe('web view (headless Chromium)', () => {
  test('the page asks for the admin token first and holds no data before it has one', async () => {
    await page.goto(`https://${mesh.address}/ui/`)
    await page.locator('#login').waitFor({ state: 'visible' })
    expect(await page.locator('#view').isHidden()).toBe(true)
    expect(await page.locator('svg#graph g').count()).toBe(0)
    await page.fill('#token', 'remora_wrong')
    await page.click('#login button[type=submit]')
    await expect.poll(() => page.textContent('#login-error')).toBe('the control plane refused this token')
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0)
  })

  test('with the token: every workload is a node, every caller → callee an edge with its numbers; denied edges are red', async () => {
    await openGraph()
    expect(page.url()).toBe(`https://${mesh.address}/ui/`)
    expect(page.url()).not.toContain(mesh.adminToken)
    expect(await page.evaluate(() => [sessionStorage.getItem('remora.adminToken') !== null, localStorage.length, document.cookie])).toEqual([true, 0, ''])

    const nodes = await page.locator('svg#graph g.node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')))
    expect(nodes.sort()).toEqual(['(plaintext)', 'shop/batch', 'shop/frontend', 'shop/orders', 'shop/payments'])
    const edges = await page.locator('svg#graph g.edge').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-from')} → ${e.getAttribute('data-to')} ${e.getAttribute('class')}`))
    expect(edges.sort()).toEqual([
      '(plaintext) → shop/frontend edge',
      'shop/batch → shop/orders edge denied',
      'shop/frontend → shop/orders edge',
      'shop/frontend → shop/payments edge denied',
      'shop/orders → shop/payments edge',
    ])
    const fo = edge('shop/frontend', 'shop/orders')
    expect(await fo.locator('text.rate').textContent()).toMatch(/^73 req · \d+\.\d+ rps · err 0\.0%$/)
    expect(await fo.locator('text.latency').textContent()).toMatch(/^p50 [\d.]+m?s · p99 [\d.]+m?s$/)
    expect(await fo.locator('g.lock title').textContent()).toBe('mTLS')
    expect(await edge('(plaintext)', 'shop/frontend').locator('g.lock').count()).toBe(0)
    expect(await edge('shop/frontend', 'shop/payments').locator('text.deny').textContent()).toBe('DENY 3')
    expect(await edge('shop/frontend', 'shop/payments').locator('path.line').getAttribute('marker-end')).toBe('url(#arrow-denied)')

    const rows = await page.locator('#edges tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)))
    expect(rows.find((r) => r[0] === 'shop/frontend' && r[1] === 'shop/orders')).toEqual(['shop/frontend', 'shop/orders', expect.any(String), '0.0%', expect.any(String), expect.any(String), 'yes', '73', '0'])
    expect(rows.find((r) => r[0] === 'shop/batch')).toEqual(['shop/batch', 'shop/orders', expect.any(String), '0.0%', expect.any(String), expect.any(String), 'yes', '0', '2'])
    expect(rows.find((r) => r[0] === '(plaintext)')).toEqual(['(plaintext)', 'shop/frontend', expect.any(String), '0.0%', expect.any(String), expect.any(String), 'no', '12', '0'])
    expect(await page.textContent('#summary')).toMatch(/^5 workloads · 5 edges · /)

    // The page's numbers are `remora graph`'s: the same record through cli/commands/graph.ts.
    const r = await mesh.api('GET', '/v1/traffic?since=1h')
    const model = buildGraph(r.json.edges as ObservedEdge[], r.json.window as { from: number; to: number })
    expect(rows).toEqual(model.edges.map((e) => [e.from, e.to, formatRps(e.rps), formatRate(e.errorRate), formatMs(e.p50), formatMs(e.p99), e.mtls === 'all' ? 'yes' : e.mtls === 'some' ? 'partly' : 'no', String(e.allow), String(e.deny)]))
  })

  test('clicking a denied edge opens its panel: the rule that decided and the recent denials with their reason', async () => {
    await edge('shop/frontend', 'shop/payments').locator('text.rate').click()
    const panel = page.locator('#details')
    await panel.waitFor({ state: 'visible' })
    expect(await panel.locator('h3').textContent()).toBe('shop/frontend → shop/payments')
    expect(await panel.locator('#rules li').allTextContents()).toEqual([`DENY POST /charge (port ${mesh.apps.payments.port}): 3 · by default decision (no policy matched)`])
    const denials = await panel.locator('#denials li').allTextContents()
    expect(denials).toHaveLength(3)
    for (const d of denials) expect(d).toMatch(/^\d{4}-\d\d-\d\dT[\d:]+Zdeny: no ALLOW policy matched \(1 applied: shop\/payments-allow-orders\)$/)
    expect(await panel.locator('.trace').textContent()).toBe('no sampled trace recorded for this edge')
    expect(await edge('shop/frontend', 'shop/payments').getAttribute('class')).toContain('selected')
  })

  test('an allowed edge lists the policy and rule of each decision', async () => {
    await page.locator('#edges tbody tr[data-from="shop/frontend"][data-to="shop/orders"]').click()
    const rules = await page.locator('#details #rules li').allTextContents()
    expect(rules.sort()).toEqual(
      [
        `ALLOW GET /orders (port ${mesh.apps.orders.port}): 40 · by shop/orders-allow-frontend rules[0]`,
        `ALLOW GET /orders/{id} (port ${mesh.apps.orders.port}): 25 · by shop/orders-allow-frontend rules[0]`,
        `ALLOW POST /orders (port ${mesh.apps.orders.port}): 8 · by shop/orders-allow-frontend rules[0]`,
      ].sort(),
    )
    expect(await page.locator('#details #denials li').allTextContents()).toEqual(['none recorded'])
  })

  test('the screenshot in the docs is this mesh, with a denied edge open', async () => {
    await page.locator('#edges tbody tr[data-from="shop/frontend"][data-to="shop/payments"]').click()
    await page.locator('#details').waitFor({ state: 'visible' })
    const png = await page.screenshot({ fullPage: true })
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a')
    if (process.env.REMORA_UPDATE_SCREENSHOT === '1' || !existsSync(SCREENSHOT)) writeFileSync(SCREENSHOT, png)
    expect(readFileSync(SCREENSHOT).subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a')
  })

  test('strings from the record are text, never markup: a path and a reason carrying HTML stay inert; a sampled trace links to Jaeger', async () => {
    const now = Date.now()
    const status = await reportAsOrders({
      destination: { principal: mesh.sidecars.orders.spiffeId, namespace: 'shop', workload: 'orders' },
      windowStart: now - 1000,
      windowEnd: now,
      edges: [
        {
          source: mesh.sidecars.frontend.spiffeId,
          method: 'GET',
          path: XSS_PATH,
          port: mesh.apps.orders.port,
          protocol: 'http',
          decision: 'DENY',
          policy: 'shop/x',
          rule: 0,
          mtls: true,
          count: 1,
          errors: 0,
          firstSeen: now,
          lastSeen: now + 60_000,
          latency: latency([[1, 1]]),
          denials: [{ at: now, reason: XSS_REASON }],
          traceId: TRACE_ID,
        },
      ],
      dropped: 0,
    })
    expect(status).toBe(200)
    await page.click('#filters button[type=submit]')
    await expect.poll(() => edge('shop/frontend', 'shop/orders').getAttribute('class')).toContain('denied')
    await edge('shop/frontend', 'shop/orders').locator('text.rate').click()
    const panel = page.locator('#details')
    expect(await panel.locator('#rules li').first().textContent()).toBe(`DENY GET ${XSS_PATH} (port ${mesh.apps.orders.port}): 1 · by shop/x rules[0]`)
    expect(await panel.locator('#denials li').allTextContents()).toEqual([expect.stringContaining(XSS_REASON)])
    expect(await page.evaluate(() => [document.title, document.querySelectorAll('img, script:not([src])').length])).toEqual(['remora · service graph', 0])
    expect(await panel.locator('#trace-link').getAttribute('href')).toBe(`${JAEGER_UI}/trace/${TRACE_ID}`)
    expect(await panel.locator('#trace-link').getAttribute('rel')).toBe('noopener noreferrer')
  })

  test('sign out forgets the token; no CSP violation or script error happened', async () => {
    await page.click('#signout')
    await page.locator('#login').waitFor({ state: 'visible' })
    expect(await page.evaluate(() => sessionStorage.getItem('remora.adminToken'))).toBeNull()
    expect(await page.locator('svg#graph g').count()).toBe(0)
    // The 401 of the wrong-token test is the one console error a browser logs on its own.
    expect(problems.filter((p) => !/status of 401/.test(p)), problems.join('\n')).toEqual([])
  })
})
