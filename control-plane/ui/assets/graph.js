/* global document, window, sessionStorage */
// The web view of the service graph. The page holds no data: this script asks for the admin token
// (kept in sessionStorage, never in the URL), fetches GET /v1/traffic with it and draws the graph.
// Every string from the record (principals, workloads, paths, reasons) is attacker-controlled:
// the DOM is built with createElement + textContent only, never innerHTML. The numbers are the ones
// `remora graph` prints (cli/commands/graph.ts: the same sums, rates and histogram quantiles).

const TOKEN_KEY = 'remora.adminToken'
const SVG = 'http://www.w3.org/2000/svg'
/** TRAFFIC_LATENCY_BOUNDS_MS (proxy/snapshot/traffic.ts); the last bucket is +Inf. */
const BOUNDS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
const PLAINTEXT = '(plaintext)'
const TRACE_ID = /^[0-9a-f]{32}$/

const $ = (id) => document.getElementById(id)

let config = { jaegerUi: null }
let current = null

// --- the model (as buildGraph in cli/commands/graph.ts) -----------------------------------------

function quantile(hist, q) {
  const total = hist.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  const rank = q * total
  let before = 0
  for (let i = 0; i < hist.length; i++) {
    const n = hist[i]
    if (n > 0 && before + n >= rank) {
      const upper = BOUNDS[i]
      const lower = i === 0 ? 0 : BOUNDS[i - 1]
      if (upper === undefined) return lower
      return lower + ((upper - lower) * (rank - before)) / n
    }
    before += n
  }
  return BOUNDS[BOUNDS.length - 1]
}

function sourceNode(principal, byPrincipal) {
  if (principal === '') return { id: PLAINTEXT, namespace: null, workload: PLAINTEXT }
  const known = byPrincipal.get(principal)
  if (known) return known
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal)
  if (m) return { id: `${m[1]}/${m[2]}`, namespace: m[1], workload: m[2] }
  return { id: principal, namespace: null, workload: principal }
}

const toMs = (v) => (typeof v === 'number' ? v : Date.parse(v))

function buildGraph(edges, window) {
  const nodes = new Map()
  const byPrincipal = new Map()
  for (const e of edges) {
    const n = { id: `${e.destination.namespace}/${e.destination.workload}`, namespace: e.destination.namespace, workload: e.destination.workload }
    nodes.set(n.id, n)
    if (e.destination.principal) byPrincipal.set(e.destination.principal, n)
  }
  const seconds = Math.max(1, (window.to - window.from) / 1000)
  const groups = new Map()
  for (const e of edges) {
    const from = sourceNode(e.source, byPrincipal)
    nodes.set(from.id, from)
    const to = `${e.destination.namespace}/${e.destination.workload}`
    const k = `${from.id}\u0000${to}`
    if (!groups.has(k)) groups.set(k, { from: from.id, to, source: e.source, parts: [] })
    groups.get(k).parts.push(e)
  }
  const out = []
  for (const g of groups.values()) {
    const sum = (f) => g.parts.reduce((a, e) => a + f(e), 0)
    const count = sum((e) => e.count)
    const errors = sum((e) => e.errors)
    const hist = new Array(BOUNDS.length + 1).fill(0)
    for (const e of g.parts) e.latency.forEach((n, i) => (hist[i] += n))
    const mtls = sum((e) => (e.mtls ? e.count : 0))
    const newest = [...g.parts].sort((a, b) => b.lastSeen - a.lastSeen)
    out.push({
      from: g.from,
      to: g.to,
      source: g.source,
      count,
      allow: sum((e) => (e.decision === 'ALLOW' ? e.count : 0)),
      deny: sum((e) => (e.decision === 'DENY' ? e.count : 0)),
      errors,
      rps: count / seconds,
      errorRate: count === 0 ? 0 : errors / count,
      p50: quantile(hist, 0.5),
      p99: quantile(hist, 0.99),
      mtls: mtls === count ? 'all' : mtls === 0 ? 'none' : 'some',
      denials: g.parts.flatMap((e) => e.denials).sort((a, b) => b.at - a.at).slice(0, 10),
      traceId: (newest.find((e) => e.traceId !== null) || { traceId: null }).traceId,
      parts: newest,
    })
  }
  out.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to))
  return { window, nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)), edges: out }
}

const formatMs = (ms) => (ms === null ? '-' : ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10000 ? 0 : 1)}s` : ms >= 10 ? `${Math.round(ms)}ms` : `${ms.toFixed(1)}ms`)
const formatRps = (r) => (r >= 100 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r >= 0.001 || r === 0 ? r.toFixed(3) : '<0.001')
const formatRate = (r) => `${(r * 100).toFixed(r > 0 && r < 0.001 ? 2 : 1)}%`
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

// --- layout: layered by call depth ---------------------------------------------------------------

/** Layer of each node: the longest call chain that reaches it (back edges of a cycle ignored). */
function layers(nodes, edges) {
  const out = new Map(nodes.map((n) => [n.id, []]))
  for (const e of edges) if (e.from !== e.to) out.get(e.from).push(e.to)
  const indeg = new Map(nodes.map((n) => [n.id, 0]))
  for (const e of edges) if (e.from !== e.to) indeg.set(e.to, indeg.get(e.to) + 1)
  // DFS from the roots (then from whatever a cycle left unvisited) drops the edges that close a cycle.
  const state = new Map()
  const dag = new Map(nodes.map((n) => [n.id, []]))
  const order = []
  const visit = (id) => {
    state.set(id, 1)
    for (const to of out.get(id)) {
      if (state.get(to) === 1) continue
      dag.get(id).push(to)
      if (!state.has(to)) visit(to)
    }
    state.set(id, 2)
    order.push(id)
  }
  for (const n of nodes) if (indeg.get(n.id) === 0 && !state.has(n.id)) visit(n.id)
  for (const n of nodes) if (!state.has(n.id)) visit(n.id)
  const depth = new Map(nodes.map((n) => [n.id, 0]))
  for (const id of order.reverse()) for (const to of dag.get(id)) depth.set(to, Math.max(depth.get(to), depth.get(id) + 1))
  return depth
}

function layout(g) {
  const depth = layers(g.nodes, g.edges)
  const byLayer = new Map()
  for (const n of g.nodes) {
    const d = depth.get(n.id)
    if (!byLayer.has(d)) byLayer.set(d, [])
    byLayer.get(d).push(n)
  }
  const tallest = Math.max(1, ...[...byLayer.values()].map((l) => l.length))
  const pos = new Map()
  const dx = 320
  const dy = 170
  // Room above and below for the edges that bend around the nodes between their ends.
  const top = 140
  for (const [d, list] of byLayer) {
    const offset = ((tallest - list.length) * dy) / 2
    list.forEach((n, i) => pos.set(n.id, { x: 110 + d * dx, y: top + offset + i * dy }))
  }
  return { pos, width: 220 + Math.max(0, ...byLayer.keys()) * dx, height: 2 * top + (tallest - 1) * dy }
}

// --- drawing (createElementNS + textContent only) -------------------------------------------------

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  for (const c of children) e.append(typeof c === 'string' ? document.createTextNode(c) : c)
  return e
}

const short = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s)
const R = 30

function lock(x, y) {
  const g = el('g', { class: 'lock', transform: `translate(${x},${y})` })
  g.append(el('title', {}, 'mTLS'), el('path', { d: 'M2 5 V2.5 a3 3 0 0 1 6 0 V5' }), el('rect', { x: 0, y: 5, width: 10, height: 7, rx: 1.5 }))
  return g
}

function drawGraph(g) {
  const svg = $('graph')
  svg.replaceChildren()
  const { pos, width, height } = layout(g)
  // Scaled to the panel's width (the viewBox keeps the proportions), never wider than drawn.
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  svg.style.maxWidth = `${width}px`
  const defs = el('defs')
  for (const id of ['arrow', 'arrow-denied']) {
    const m = el('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 11, markerHeight: 11, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' })
    m.append(el('path', { d: 'M0 0 L10 5 L0 10 z' }))
    defs.append(m)
  }
  svg.append(defs)
  const pairs = new Set(g.edges.map((e) => `${e.from}\u0000${e.to}`))
  const depth = layers(g.nodes, g.edges)
  const middle = height / 2
  const edgeLayer = el('g', { class: 'edges' })
  const nodeLayer = el('g', { class: 'nodes' })
  for (const e of g.edges) {
    const a = pos.get(e.from)
    const b = pos.get(e.to)
    const classes = ['edge']
    if (e.deny > 0) classes.push('denied')
    if (e.deny > 0 && e.allow > 0) classes.push('partial')
    const ge = el('g', { class: classes.join(' '), tabindex: 0, role: 'button', 'data-from': e.from, 'data-to': e.to })
    ge.append(el('title', {}, `${e.from} → ${e.to}: ALLOW ${e.allow}, DENY ${e.deny}`))
    let d
    let mx
    let my
    if (e.from === e.to) {
      d = `M${a.x - 12} ${a.y - R + 2} C${a.x - 50} ${a.y - 95} ${a.x + 50} ${a.y - 95} ${a.x + 12} ${a.y - R + 2}`
      mx = a.x
      my = a.y - 88
    } else {
      // Adjacent layers: straight (a pair of opposite edges bends apart). An edge that skips a layer,
      // or stays in one, bends away from the middle of the drawing so it passes beside the nodes
      // between its ends, not through them.
      const span = Math.abs(depth.get(e.to) - depth.get(e.from))
      const len = Math.hypot(b.x - a.x, b.y - a.y) || 1
      const ux = (b.x - a.x) / len
      const uy = (b.y - a.y) / len
      let bend = pairs.has(`${e.to}\u0000${e.from}`) ? 40 : 0
      if (span !== 1) {
        const away = (a.y + b.y) / 2 > middle + 1 ? 1 : -1
        // The perpendicular (-uy, ux) points down for an edge drawn left to right.
        bend = away * (ux >= 0 ? 1 : -1) * 120 * Math.max(1, span - 1)
      }
      const cx = (a.x + b.x) / 2 - uy * bend
      const cy = (a.y + b.y) / 2 + ux * bend
      // Leave each circle where the curve leaves it.
      const ls = Math.hypot(cx - a.x, cy - a.y) || 1
      const lt = Math.hypot(b.x - cx, b.y - cy) || 1
      const sx = a.x + ((cx - a.x) / ls) * R
      const sy = a.y + ((cy - a.y) / ls) * R
      const tx = b.x - ((b.x - cx) / lt) * (R + 3)
      const ty = b.y - ((b.y - cy) / lt) * (R + 3)
      d = `M${sx} ${sy} Q${cx} ${cy} ${tx} ${ty}`
      mx = (sx + 2 * cx + tx) / 4
      my = (sy + 2 * cy + ty) / 4
    }
    ge.append(el('path', { class: 'hit', d }), el('path', { class: 'line', d, 'marker-end': e.deny > 0 ? 'url(#arrow-denied)' : 'url(#arrow)' }))
    ge.append(el('text', { x: mx, y: my - 20, class: 'rate' }, `${e.count} req · ${formatRps(e.rps)} rps · err ${formatRate(e.errorRate)}`))
    ge.append(el('text', { x: mx, y: my - 6, class: 'latency' }, `p50 ${formatMs(e.p50)} · p99 ${formatMs(e.p99)}`))
    const badges = el('g', { class: 'badges', transform: `translate(${mx},${my + 2})` })
    const lockX = e.deny > 0 ? -34 : -5
    if (e.mtls !== 'none') badges.append(lock(lockX, 0))
    if (e.deny > 0) badges.append(el('text', { x: e.mtls !== 'none' ? 12 : 0, y: 11, class: 'deny' }, `DENY ${e.deny}`))
    ge.append(badges)
    ge.addEventListener('click', () => select(e))
    ge.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault()
        select(e)
      }
    })
    edgeLayer.append(ge)
  }
  for (const n of g.nodes) {
    const p = pos.get(n.id)
    const gn = el('g', { class: n.id === PLAINTEXT ? 'node plaintext' : 'node', 'data-node': n.id, transform: `translate(${p.x},${p.y})` })
    gn.append(el('title', {}, n.id), el('circle', { r: R }), el('text', { y: R + 17 }, short(n.workload, 28)))
    if (n.namespace) gn.append(el('text', { y: R + 31, class: 'ns' }, short(n.namespace, 28)))
    nodeLayer.append(gn)
  }
  svg.append(edgeLayer, nodeLayer)
}

function drawTable(g) {
  const body = $('edges').tBodies[0]
  body.replaceChildren()
  for (const e of g.edges) {
    const tr = h(
      'tr',
      { class: e.deny > 0 ? 'denied' : '', 'data-from': e.from, 'data-to': e.to, tabindex: 0 },
      h('td', {}, e.from),
      h('td', {}, e.to),
      h('td', {}, formatRps(e.rps)),
      h('td', {}, formatRate(e.errorRate)),
      h('td', {}, formatMs(e.p50)),
      h('td', {}, formatMs(e.p99)),
      h('td', {}, e.mtls === 'all' ? 'yes' : e.mtls === 'some' ? 'partly' : 'no'),
      h('td', {}, String(e.allow)),
      h('td', {}, String(e.deny)),
    )
    tr.addEventListener('click', () => select(e))
    body.append(tr)
  }
}

/** A link to the trace in Jaeger, only for an http(s) base and a well-formed trace id. */
function traceLink(traceId) {
  const base = config.jaegerUi
  if (!traceId || !TRACE_ID.test(traceId)) return h('p', { class: 'trace' }, 'no sampled trace recorded for this edge')
  if (typeof base !== 'string' || !/^https?:\/\//.test(base)) return h('p', { class: 'trace' }, `trace ${traceId} (start the control plane with --jaeger-ui URL for a link)`)
  const a = h('a', { href: `${base.replace(/\/+$/, '')}/trace/${traceId}`, target: '_blank', rel: 'noopener noreferrer', id: 'trace-link' }, `open trace ${traceId} in Jaeger`)
  return h('p', { class: 'trace' }, a)
}

function select(e) {
  for (const n of document.querySelectorAll('.edge.selected')) n.classList.remove('selected')
  for (const n of document.querySelectorAll('.edge')) if (n.getAttribute('data-from') === e.from && n.getAttribute('data-to') === e.to) n.classList.add('selected')
  const panel = $('details')
  const rules = h('ul', { id: 'rules' })
  for (const p of e.parts) {
    const what = p.protocol === 'tcp' ? `TCP port ${p.port}` : `${p.method} ${p.path} (port ${p.port}${p.protocol === 'grpc' ? ', gRPC' : ''})`
    const by = p.policy === null ? 'default decision (no policy matched)' : `${p.policy}${p.rule === null ? '' : ` rules[${p.rule}]`}`
    rules.append(h('li', {}, h('span', { class: p.decision === 'DENY' ? 'deny' : 'allow' }, p.decision), ` ${what}: ${p.count} · by ${by}`))
  }
  const denials = h('ul', { id: 'denials' })
  for (const d of e.denials) denials.append(h('li', {}, h('time', { datetime: iso(d.at) }, iso(d.at)), d.reason))
  if (e.denials.length === 0) denials.append(h('li', {}, 'none recorded'))
  panel.replaceChildren(
    h('h3', {}, `${e.from} → ${e.to}`),
    h('p', {}, `${e.count} requests · ${formatRps(e.rps)} rps · errors ${formatRate(e.errorRate)} · p50 ${formatMs(e.p50)} · p99 ${formatMs(e.p99)} · ${e.mtls === 'all' ? 'mTLS' : e.mtls === 'some' ? 'partly mTLS' : 'plaintext'}`),
    h('p', {}, `caller ${e.source === '' ? 'plaintext (no verified identity)' : e.source}`),
    h('h4', {}, 'Rules'),
    rules,
    h('h4', {}, 'Recent denials'),
    denials,
    h('h4', {}, 'Trace'),
    traceLink(e.traceId),
  )
  panel.hidden = false
}

// --- data -----------------------------------------------------------------------------------------

function showLogin(message) {
  $('view').hidden = true
  $('filters').hidden = true
  $('login').hidden = false
  $('login-error').textContent = message || ''
  $('token').focus()
}

async function load() {
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (!token) return showLogin()
  const q = new URLSearchParams({ since: $('since').value })
  const ns = $('namespace').value.trim()
  if (ns) q.set('namespace', ns)
  $('error').textContent = ''
  let res
  try {
    res = await window.fetch(`/v1/traffic?${q}`, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store', credentials: 'omit' })
  } catch (err) {
    $('error').textContent = `cannot reach the control plane: ${err.message}`
    return
  }
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY)
    return showLogin('the control plane refused this token')
  }
  const body = await res.json().catch(() => null)
  if (!res.ok || !body || !Array.isArray(body.edges)) {
    $('error').textContent = `GET /v1/traffic: ${(body && body.error && `${body.error.code}: ${body.error.message}`) || `HTTP ${res.status}`}`
    return
  }
  $('login').hidden = true
  $('view').hidden = false
  $('filters').hidden = false
  const window_ = { from: toMs(body.window.from), to: toMs(body.window.to) }
  current = buildGraph(body.edges, window_)
  $('summary').textContent = `${current.nodes.length} workloads · ${current.edges.length} edges · ${iso(window_.from)} → ${iso(window_.to)}${current.edges.length === 0 ? ' · no traffic recorded in this window' : ''}`
  drawGraph(current)
  drawTable(current)
  $('details').hidden = true
}

async function start() {
  try {
    const r = await window.fetch('config.json', { cache: 'no-store' })
    if (r.ok) config = await r.json()
  } catch {
    /* no config: no Jaeger link */
  }
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault()
    const t = $('token').value.trim()
    $('token').value = ''
    if (!t) return
    sessionStorage.setItem(TOKEN_KEY, t)
    void load()
  })
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault()
    void load()
  })
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY)
    current = null
    $('graph').replaceChildren()
    $('edges').tBodies[0].replaceChildren()
    showLogin()
  })
  await load()
}

void start()
