// Fuzzing the front door: seeded, grammar-based mutation of HTTP/1.1 requests (generator.ts, seeded
// from llhttp's and Node's parser tests in seeds.ts) against the inbound (inside mTLS) and outbound
// (plain) fronts of both engines, one input per connection, one connection at a time.
//
//   npx vitest run --project reliability test/reliability/fuzz/fuzz.test.ts
//   REMORA_FUZZ_SEED=0x13f022 …                 another run seed (printed with every finding)
//   REMORA_FUZZ_CASE=raw/inbound#1234 …          replay one input alone, printed with what came back
//
// Invariants per input (oracle.ts for the app side):
//   crash          no uncaughtException / unhandledRejection in this process, no internal_error log
//   hang           the connection answers and closes within BOUND_MS of the caller's FIN
//   app-*          what reaches the app is well-formed: its parser accepts it, origin-form path
//                  already normalized, no control characters, no x-remora-*/x-envoy-*, one Host,
//                  no CL+TE, no hop-by-hop or Connection-named headers, XFCC only the sidecar's
//   deny-*         nothing under /admin and no x-user element "mallory" reaches the app
//   desync         the app never answers more requests than the caller got answers from the app
//                  (a request the sidecar framed differently from the app: smuggling)
//
// The sidecars run in this process, not in a child: each input is then attributed exactly (one
// connection at a time, the app recorder and the sidecars' logs in the same heap), and a throw out
// of a socket callback surfaces as uncaughtException here just as it would kill a child process.
// What a child would add (its own RSS, fd table) is measured by the abuse scenarios instead.
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { budget, MODE, recordFigures } from '../budget.js'
import { createTestPki, type Leaf, type TestPki } from '../../helpers/pki.js'
import { startPair, type TestSidecar } from '../../helpers/mesh.js'
import { createRng, generate, show, type FuzzInput } from './generator.js'
import { CALLER_ID, checkAppRequest, type AppRequest, type Violation } from './oracle.js'
import { SEEDS } from './seeds.js'

const parseSeed = (v: string | undefined): number | null => (v === undefined || v === '' ? null : Number.isFinite(Number(v)) ? Number(v) : null)
const SEED = parseSeed(process.env.REMORA_FUZZ_SEED) ?? 0x13f022
const CASE = /^(raw|node-http)\/(inbound|outbound)#(\d+)$/.exec(process.env.REMORA_FUZZ_CASE ?? '')
if (process.env.REMORA_FUZZ_CASE && !CASE) throw new Error('REMORA_FUZZ_CASE must look like raw/inbound#123')
/** Inputs per front (4 fronts): bounded ≤ 2 min in all on this 2-core machine; full ≈ 10×. */
const EXECS = Number(process.env.REMORA_FUZZ_EXECS ?? 0) || budget(1500, 10_000)
/** After the caller's FIN, the sidecar must have answered and closed within this. */
const BOUND_MS = 5000
/** No byte to the caller and no event at the app for this long: the exchange has settled. */
const QUIET_MS = 12
/** …and an input with a complete head waits up to this for the first byte of an answer (a cold upstream pool). */
const FIRST_BYTE_MS = 400

const POLICIES = `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules:
  - to: [{ operation: { paths: ["/admin", "/admin/*"] } }]
  - when: [{ key: "request.headers[x-user]", values: ["mallory"] }]
---
apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: shop }
spec: { action: ALLOW, rules: [{}] }
`

type Engine = 'raw' | 'node-http'
type Front = 'inbound' | 'outbound'

interface Finding {
  invariant: string
  signature: string
  detail: string
  exec: number
  input: string
  kind: string
}

/** The app: records and checks every request; answers with x-fuzz-app so the caller's answers can be counted. */
interface Recorder {
  port: number
  requests: number
  completed: number
  inflight: number
  /** Header names (lower-case) of the requests seen since the last reset. */
  headerNames: Set<string>
  /** performance.now() of the app's last event (a head, body bytes, an answer). */
  lastActivity: number
  onViolation: (v: Violation) => void
  close(): Promise<void>
}

async function startRecorder(): Promise<Recorder> {
  const rec: Recorder = { port: 0, requests: 0, completed: 0, inflight: 0, headerNames: new Set(), lastActivity: 0, onViolation: () => {}, close: async () => {} }
  const check = (req: http.IncomingMessage): void => {
    rec.requests++
    rec.lastActivity = performance.now()
    for (let i = 0; i < req.rawHeaders.length; i += 2) rec.headerNames.add(req.rawHeaders[i]!.toLowerCase())
    const r: AppRequest = { method: req.method ?? '', url: req.url ?? '', httpVersion: req.httpVersion, rawHeaders: req.rawHeaders }
    for (const v of checkAppRequest(r)) rec.onViolation(v)
  }
  const server = http.createServer({ maxHeaderSize: 256 * 1024, requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 30_000 }, (req, res) => {
    check(req)
    rec.inflight++
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      rec.inflight--
    }
    req.on('error', finish)
    req.on('close', finish)
    req.on('data', () => (rec.lastActivity = performance.now()))
    req.on('end', () => {
      rec.lastActivity = performance.now()
      rec.completed++
      res.writeHead(200, { 'x-fuzz-app': '1', 'content-length': '2' })
      res.end('ok')
      finish()
    })
  })
  // Upgrade / CONNECT requests do not reach 'request': check them too, then refuse.
  const refuse = (req: http.IncomingMessage, socket: import('node:stream').Duplex): void => {
    check(req)
    rec.completed++
    socket.end('HTTP/1.1 426 Upgrade Required\r\nx-fuzz-app: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
  }
  server.on('upgrade', refuse)
  server.on('connect', refuse)
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // A sidecar that aborts a stream mid-body is allowed to (EOF, reset); anything else the app's
    // own strict parser refuses was forwarded malformed.
    const code = err.code ?? ''
    if (code.startsWith('HPE_') && code !== 'HPE_INVALID_EOF_STATE') {
      const packet = (err as { rawPacket?: Buffer }).rawPacket
      rec.onViolation({ invariant: 'app-malformed', signature: code, detail: packet ? show(packet.toString('latin1'), 200) : err.message })
    }
    socket.destroy()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  rec.port = (server.address() as net.AddressInfo).port
  rec.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  }
  return rec
}

interface ExecOutcome {
  statuses: number[]
  hang: boolean
  bytes: string
}

let pki: TestPki
let client: Leaf
/** The exec being run (crash handlers attribute to it). */
type Current = { engine: Engine; front: Front; exec: number; input: FuzzInput }
let current: Current | null = null
const processErrors: { kind: string; err: unknown; at: Current | null }[] = []
const onUncaught = (err: unknown): void => void processErrors.push({ kind: 'uncaughtException', err, at: current })
const onUnhandled = (err: unknown): void => void processErrors.push({ kind: 'unhandledRejection', err, at: current })

beforeAll(async () => {
  pki = await createTestPki()
  client = await pki.issue(CALLER_ID)
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onUnhandled)
})

afterAll(() => {
  process.off('uncaughtException', onUncaught)
  process.off('unhandledRejection', onUnhandled)
})

function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const end = performance.now() + ms
    const tick = (): void => {
      if (pred()) return resolve(true)
      if (performance.now() > end) return resolve(false)
      setTimeout(tick, 2)
    }
    tick()
  })
}

let tlsSession: Buffer | undefined

/**
 * Writes one input on a fresh connection (each chunk one write), waits until the exchange is
 * settled (closed by the sidecar, or neither the caller nor the app saw a byte for QUIET_MS), then half-closes and
 * requires the close within BOUND_MS. The FIN is what ends a truncated input: the raw engine answers
 * it (400), node:http and TLS close; either way the connection must end.
 */
function exchange(front: Front, port: number, input: FuzzInput, app: Recorder): Promise<ExecOutcome> {
  return new Promise((resolve) => {
    const sock: net.Socket =
      front === 'inbound'
        ? tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined, session: tlsSession })
        : net.connect(port, '127.0.0.1')
    if (sock instanceof tls.TLSSocket) sock.on('session', (s: Buffer) => (tlsSession = s))
    let out = ''
    let last = performance.now()
    let written = 0
    let finAt = 0
    let settled = false
    const done = (hang: boolean): void => {
      if (settled) return
      settled = true
      sock.destroy()
      resolve({ statuses: [...out.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1])), hang, bytes: out })
    }
    const started = performance.now()
    // An input with a complete head deserves an answer: wait for its first byte a while longer.
    const hasHead = input.chunks.some((c) => c.includes('\n\r\n') || c.includes('\n\n')) || /\n\r?\n/.test(Buffer.concat(input.chunks).toString('latin1'))
    const tick = (): void => {
      if (settled) return
      const now = performance.now()
      if (finAt === 0) {
        const answered = out.length > 0 || !hasHead || now - written > FIRST_BYTE_MS
        if (written > 0 && ((answered && now - Math.max(last, app.lastActivity) >= QUIET_MS) || now - written > BOUND_MS)) {
          finAt = now
          sock.end()
        } else if (written === 0 && now - started > BOUND_MS * 2) return done(true) // connect/handshake never completed
      } else if (now - finAt > BOUND_MS) return done(true)
      setTimeout(tick, 2)
    }
    sock.on('data', (c: Buffer) => {
      out += c.toString('latin1')
      last = performance.now()
    })
    sock.on('error', () => {})
    sock.on('close', () => done(false))
    sock.once(front === 'inbound' ? 'secureConnect' : 'connect', async () => {
      for (const c of input.chunks) {
        if (sock.destroyed) return
        await new Promise<void>((r) => sock.write(c, () => r()))
        await new Promise<void>((r) => setImmediate(r))
      }
      written = last = performance.now()
    })
    tick()
  })
}

interface FrontRun {
  engine: Engine
  front: Front
  executions: number
  ms: number
  appRequests: number
  statuses: Map<string, number>
  /** The slowest inputs: [ms, exec]. */
  slowest: [number, number][]
  findings: Map<string, Finding & { count: number }>
}

async function fuzzFront(engine: Engine, front: Front, port: number, app: Recorder, sidecars: TestSidecar[], only: number | null): Promise<FrontRun> {
  const inbound = sidecars[0]!
  const appHeadsStart = app.requests
  let logSeen = inbound.accessLog.length
  let routedTotal = 0
  const run: FrontRun = { engine, front, executions: 0, ms: 0, appRequests: 0, statuses: new Map(), slowest: [], findings: new Map() }
  let execFindings: Violation[] = []
  app.onViolation = (v) => void execFindings.push(v)
  const record = (v: Violation, exec: number, input: FuzzInput): void => {
    const key = `${v.invariant}: ${v.signature}`
    const f = run.findings.get(key)
    if (f) f.count++
    else run.findings.set(key, { ...v, exec, input: show(input), kind: input.kind, count: 1 })
  }
  const logMark = sidecars.map((s) => s.logger.lines.length)
  const appBefore = app.requests
  const started = performance.now()
  const first = only ?? 0
  const last = only ?? EXECS - 1
  for (let i = first; i <= last; i++) {
    const input = generate(createRng(SEED, engine, front, i))
    current = { engine, front, exec: i, input }
    const errorsBefore = processErrors.length
    execFindings = []
    const t0 = performance.now()
    app.headerNames.clear()
    const o = await exchange(front, port, input, app)
    // The sidecar may still be finishing an upstream exchange: wait for the app to be quiet.
    await waitFor(() => app.inflight === 0, 2000)
    run.executions++
    run.slowest.push([performance.now() - t0, i])
    if (run.slowest.length > 20) run.slowest = run.slowest.sort((a, b) => b[0] - a[0]).slice(0, 5)
    const st = o.statuses.length ? String(o.statuses[0]) : o.hang ? 'hang' : 'closed'
    run.statuses.set(st, (run.statuses.get(st) ?? 0) + 1)
    if (o.hang) execFindings.push({ invariant: 'hang', signature: input.kind.replace(/×\d+/, '×n'), detail: `no close ${BOUND_MS} ms after FIN; got ${show(o.bytes, 120)}` })
    // Smuggling: the app parsed more requests than the inbound sidecar routed to it (its access
    // log has one line per request it routed, written once the exchange ends). Counted over the
    // whole run, so a request that reaches the app late is not charged to the next input.
    const appHeads = app.requests - appHeadsStart
    const routed = (): number => {
      for (; logSeen < inbound.accessLog.length; logSeen++) if (inbound.accessLog[logSeen]!.upstream_host !== null) routedTotal++
      return routedTotal
    }
    if (appHeads > routed() && !(await waitFor(() => routed() >= appHeads, 1000)))
      execFindings.push({ invariant: 'desync', signature: input.kind.replace(/×\d+/, '×n'), detail: `the app parsed ${appHeads} request(s) so far, the inbound sidecar routed ${routed()}` })
    routedTotal = Math.max(routedTotal, appHeads) // report each excess once
    for (const name of input.connectionNamed) {
      // a header the request's own Connection header names must not reach the app
      if (app.headerNames.has(name)) execFindings.push({ invariant: 'app-hop-by-hop', signature: 'Connection-named header', detail: name })
    }
    for (const e of processErrors.slice(errorsBefore)) {
      const err = e.err instanceof Error ? e.err : new Error(String(e.err))
      const frame = (err.stack ?? '').split('\n').find((l) => /proxy\//.test(l))?.trim() ?? ''
      execFindings.push({ invariant: 'crash', signature: `${e.kind}: ${err.message.slice(0, 80)} ${frame}`, detail: err.stack ?? err.message })
    }
    sidecars.forEach((s, k) => {
      for (const l of s.logger.lines.slice(logMark[k]!)) {
        if (l.level === 'error') execFindings.push({ invariant: 'crash', signature: `logged ${(l.obj as { event?: string }).event ?? l.msg}: ${JSON.stringify((l.obj as { err?: { message?: string } }).err?.message ?? '').slice(0, 80)}`, detail: JSON.stringify(l.obj).slice(0, 800) })
      }
      logMark[k] = s.logger.lines.length
    })
    for (const v of execFindings) record(v, i, input)
    if (only !== null) {
      console.log(`REMORA_FUZZ_SEED=${SEED} REMORA_FUZZ_CASE=${engine}/${front}#${i} (${input.kind})\ninput: ${show(input, 100_000)}\nreply: ${show(o.bytes, 4000)}\nviolations: ${JSON.stringify(execFindings, null, 2)}`)
    }
  }
  current = null
  run.ms = performance.now() - started
  run.appRequests = app.requests - appBefore
  run.slowest = run.slowest.sort((a, b) => b[0] - a[0]).slice(0, 3)
  return run
}

function report(run: FrontRun): string {
  const lines = [...run.findings.entries()].map(
    ([key, f]) => `  ${key} ×${f.count}\n    first: REMORA_FUZZ_SEED=${SEED} REMORA_FUZZ_CASE=${run.engine}/${run.front}#${f.exec} (${f.kind})\n    input: ${f.input}\n    seen: ${f.detail.slice(0, 300)}`,
  )
  return `${run.engine} ${run.front}: slowest ${JSON.stringify(run.slowest.map(([ms, i]) => [Math.round(ms), i]))}; ${run.findings.size} unique finding(s) in ${run.executions} inputs (seed ${SEED}):\n${lines.join('\n')}`
}

function recordRun(run: FrontRun): void {
  const secs = run.ms / 1000
  const byInvariant = new Map<string, number>()
  for (const f of run.findings.values()) byInvariant.set(f.invariant, (byInvariant.get(f.invariant) ?? 0) + 1)
  const statuses = [...run.statuses.entries()].sort((a, b) => b[1] - a[1])
  recordFigures(`fuzz-${run.engine}-${run.front}`, {
    section: 'fuzz',
    title: `Fuzz: ${run.engine} engine, ${run.front} front${run.front === 'inbound' ? ' (inside mTLS)' : ' (plain HTTP, through the pair)'}`,
    what: `\`npx vitest run --project reliability test/reliability/fuzz/fuzz.test.ts\` (seed ${SEED}; one input alone: \`REMORA_FUZZ_CASE=${run.engine}/${run.front}#N\`). ${EXECS} inputs, one connection each, from ${SEEDS.length} seeds (llhttp and Node test inputs) and the request grammar; the app behind the sidecar checks every request it receives.`,
    figures: {
      executions: run.executions.toLocaleString('en-US'),
      'wall time': `${secs.toFixed(1)} s`,
      'exec/s': (run.executions / secs).toFixed(0),
      'requests that reached the app': run.appRequests.toLocaleString('en-US'),
      'first answers': statuses.map(([s, n]) => `${s} ×${n}`).join(', '),
      'slowest inputs': run.slowest.map(([ms, i]) => `#${i} ${ms.toFixed(0)} ms`).join(', '),
      'unique findings': run.findings.size,
      ...(byInvariant.size ? { 'findings by invariant': [...byInvariant.entries()].map(([k, n]) => `${k} ${n}`).join(', ') } : {}),
    },
    verdict: run.findings.size === 0 ? 'no crash, no hang, no invariant broken' : `${run.findings.size} unique finding(s): see the table`,
    table: {
      columns: ['invariant', 'signature', 'count', 'first input (REMORA_FUZZ_CASE)', 'what the app saw'],
      rows: [...run.findings.values()].map((f) => [f.invariant, f.signature, f.count, `${run.engine}/${run.front}#${f.exec}`, f.detail.slice(0, 120).replace(/\n/g, ' ')]),
    },
  })
}

const ENGINES: Engine[] = ['raw', 'node-http']

test.runIf(!CASE)('the oracle flags what it must: a bad request sent straight to the app', async () => {
  const app = await startRecorder()
  const seen: string[] = []
  app.onViolation = (v) => void seen.push(`${v.invariant}: ${v.signature}`)
  const raw = 'GET /admin%00.png HTTP/1.1\r\nHost: payments\r\nx-user: alice\r\nx-user: mallory\r\nx-remora-peer: x\r\nx-envoy-internal: 1\r\n\r\n'
  await new Promise<void>((resolve) => {
    const s = net.connect(app.port, '127.0.0.1', () => s.end(raw))
    s.resume()
    s.on('close', () => resolve())
  })
  await app.close()
  expect(seen.sort()).toEqual(['app-control-char: %NUL', 'app-forged-xfcc: xfcc ×0', 'app-internal-header: x-envoy-*', 'app-internal-header: x-remora-*', 'deny-header: repeated header lines', 'deny-path: escaped control'])
})

describe.each(ENGINES)('fuzz %s engine', (engine) => {
  let app: Recorder
  let payments: TestSidecar
  let orders: TestSidecar

  beforeAll(async () => {
    app = await startRecorder()
    ;({ payments, orders } = await startPair({ engine, pki, app: `127.0.0.1:${app.port}`, policies: POLICIES }))
  })

  afterAll(async () => {
    await orders?.close()
    await payments?.close()
    await app?.close()
  })

  for (const front of ['inbound', 'outbound'] as const) {
    const only = CASE && CASE[1] === engine && CASE[2] === front ? Number(CASE[3]) : null
    test.runIf(!CASE || only !== null)(`${front} front: ${CASE ? `input #${only}` : `${EXECS} inputs`} (${MODE}), no invariant broken`, async () => {
      const port = front === 'inbound' ? payments.inbound : orders.outbound
      // The setup can fail the oracle: the DENY rule holds and an allowed request reaches the app.
      const probe = async (raw: string): Promise<number[]> => (await exchange(front, port, { chunks: [Buffer.from(raw)], kind: 'probe', connectionNamed: [] }, app)).statuses
      const before = app.requests
      expect(await probe('GET /admin HTTP/1.1\r\nHost: payments\r\n\r\n')).toEqual([403])
      expect(await probe('GET /ok HTTP/1.1\r\nHost: payments\r\nx-user: mallory\r\n\r\n')).toEqual([403])
      expect(app.requests).toBe(before)
      expect(await probe('GET /ok HTTP/1.1\r\nHost: payments\r\nx-user: alice\r\n\r\n')).toEqual([200])
      expect(app.requests).toBe(before + 1)

      const run = await fuzzFront(engine, front, port, app, [payments, orders], only)
      if (only === null) recordRun(run)
      // Still serving after the run.
      expect(await probe('GET /ok HTTP/1.1\r\nHost: payments\r\n\r\n')).toEqual([200])
      console.log(report(run))
      expect([...run.findings.keys()], report(run)).toEqual([])
    })
  }
})
