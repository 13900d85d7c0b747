// Fault: workload certificates expire while their control plane is down.
//
// A test control plane (in process, real HTTPS/mTLS, file store) issues short-lived certificates;
// frontend, batch and orders bootstrap from it. Right after orders renewed, the control plane stops;
// the certificates run out. A probe frontend → orders runs all along (its mTLS connection to orders
// is pooled and was set up while the certificates were valid); a probe batch → orders starts after
// they expired (its first handshake is then). Measured: what callers see (status, response flag),
// what the sidecars report (/ready, /certs, remora_cert_expiry_seconds, their log), and, once the
// control plane is back on the same store and port, the time until the sidecars hold new
// certificates and both callers get 200.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { budget, MODE, recordFigures } from '../budget.js'
import { rmDir, startMeshSidecar, startTestControlPlane, type MeshSidecar, type TestControlPlane } from '../../helpers/control-plane.js'
import { plainRequest } from '../../helpers/mesh.js'
import { metricValue, scrape } from '../../helpers/metrics.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { outcomesText, routes, startProbe } from './lib.js'

const CERT_TTL_MS = budget(5_000, 10_000)
/** How long the control plane stays down after the first caller failed. */
const EXPIRED_HOLD_MS = budget(2_000, 10_000)

let cp: TestControlPlane | null = null
let cpDir = ''
let cpPort = 0
let app: Upstream
let orders: MeshSidecar
let frontend: MeshSidecar
let batch: MeshSidecar

beforeAll(async () => {
  cp = await startTestControlPlane({ certTtlMs: CERT_TTL_MS })
  cpDir = cp.dir
  cpPort = cp.cp.port
  app = await startUpstream()
  // Join tokens outlive the outage here; with a token that expired meanwhile the re-bootstrap is refused (REMORA_ERR_CP_TOKEN_EXPIRED).
  const mk = async (sa: string, upstream: string): Promise<MeshSidecar> =>
    startMeshSidecar({ addresses: [cp!.address], caPem: cp!.cp.caPem, serviceAccount: sa, app: upstream, token: await cp!.token(sa, { ttlMs: 3_600_000 }) })
  orders = await mk('orders', app.address)
  frontend = await mk('frontend', '127.0.0.1:1')
  batch = await mk('batch', '127.0.0.1:1')
  await routes(frontend, 'orders.shop')
  await routes(batch, 'orders.shop')
}, 60_000)

afterAll(async () => {
  await frontend?.close()
  await batch?.close()
  await orders?.close()
  await cp?.close()
  await app?.close()
  if (cpDir) await rmDir(cpDir)
})

const ready = async (s: MeshSidecar): Promise<string> => {
  const r = await plainRequest(s.admin, { path: '/ready' })
  return `${r.status} ${(JSON.parse(r.body) as { reason?: string }).reason ?? ''}`.trim()
}
const certs = async (s: MeshSidecar): Promise<{ expiresInSeconds: number; notAfter: string }> => JSON.parse((await plainRequest(s.admin, { path: '/certs' })).body) as never
const expirySeconds = async (s: MeshSidecar): Promise<number> => metricValue((await scrape(s.admin)).families, 'remora_cert_expiry_seconds')

describe(`fault: workload certificates expire while the control plane is down (${MODE})`, () => {
  test('a new mTLS connection is refused once a certificate expired (a pooled one lives on); all recover when the control plane is back', async () => {
    const probe = startProbe(frontend.outbound, { host: 'orders.shop', path: '/orders' })
    await probe.next((o) => o === '200')
    // Stop right after orders renewed: its certificate is then the newest it can have.
    const renewed = await orders.client.next<{ notAfter: Date }>('renewed', CERT_TTL_MS * 2)
    const stopAt = Date.now()
    const linesAt = { batch: batch.logger.lines.length, orders: orders.logger.lines.length }
    await cp!.close()
    cp = null
    const notAfter = Math.max(renewed.notAfter.getTime(), batch.client.certificate!.notAfter.getTime())
    const beforeExpiry = { ready: await ready(batch), gauge: await expirySeconds(batch) }
    // Once both ends' certificates ran out, batch calls orders for the first time: a new handshake.
    while (Date.now() <= notAfter + 50) await new Promise((r) => setTimeout(r, Math.max(10, notAfter + 60 - Date.now())))
    const fresh = startProbe(batch.outbound, { host: 'orders.shop', path: '/orders' })
    await fresh.next((o) => o !== '200', CERT_TTL_MS * 3)
    const firstFailure = Date.now()
    await new Promise((r) => setTimeout(r, EXPIRED_HOLD_MS))
    const expired = {
      readyFrontend: await ready(batch),
      readyOrders: await ready(orders),
      certsFrontend: await certs(batch),
      certsOrders: await certs(orders),
      gaugeFrontend: await expirySeconds(batch),
      gaugeOrders: await expirySeconds(orders),
      pooled: { ...probe.summary.outcomes },
    }
    const logged = [...new Set([...batch.logger.lines.slice(linesAt.batch), ...orders.logger.lines.slice(linesAt.orders)].filter((l) => l.level === 'warn' || l.level === 'error').map((l) => (l.obj as { event?: string }).event ?? l.msg ?? ''))]

    // The control plane comes back on the same store and port.
    const back = Date.now()
    const newCerts = Promise.all([orders, frontend, batch].map((s) => Promise.race([s.client.next<{ notAfter: Date }>('bootstrapped', 60_000), s.client.next<{ notAfter: Date }>('renewed', 60_000)])))
    cp = await startTestControlPlane({ dir: cpDir, port: cpPort, certTtlMs: CERT_TTL_MS })
    const restartMs = Date.now() - back
    await newCerts
    const certsMs = Date.now() - back
    await fresh.next((o) => o === '200', 30_000)
    const trafficMs = Date.now() - back
    const after = { ready: await ready(batch), gauge: await expirySeconds(batch) }
    const seen = await fresh.stop()
    const pooled = await probe.stop()
    const failures = Object.fromEntries(Object.entries(seen.outcomes).filter(([o]) => o !== '200'))

    recordFigures('fault-cert-expiry', {
      section: 'faults',
      title: 'Fault: workload certificates expire while the control plane is down',
      what:
        '`npx vitest run --project reliability test/reliability/faults/cert-expiry.test.ts`. A test control plane issues ' +
        `${CERT_TTL_MS / 1000} s certificates (renewed at 70 %); frontend → (mTLS) → orders. The control plane stops right after orders renewed; the certificates run out; ` +
        `${EXPIRED_HOLD_MS / 1000} s after the first failed call the control plane starts again on the same store and port. A probe frontend → orders runs throughout.`,
      figures: {
        'control plane stopped → certificates expired (ms)': notAfter - stopAt,
        'a new connection after expiry (batch → orders) saw': outcomesText(failures),
        'certificate notAfter → first failed call (ms)': firstFailure - notAfter,
        'a pooled connection set up before expiry (frontend → orders) saw, whole run': outcomesText(pooled.outcomes),
        '/ready (batch) before / while expired / after': `${beforeExpiry.ready} / ${expired.readyFrontend} / ${after.ready}`,
        '/certs expiresInSeconds while expired (batch / orders)': `${expired.certsFrontend.expiresInSeconds} / ${expired.certsOrders.expiresInSeconds}`,
        'remora_cert_expiry_seconds before / while expired / after (batch)': `${beforeExpiry.gauge} / ${expired.gaugeFrontend} / ${after.gauge}`,
        'warnings logged while down': logged.join(', ') || 'none',
        'control plane back: restart (ms)': restartMs,
        'control plane back → both sidecars hold a new certificate (ms)': certsMs,
        'control plane back → batch gets 200 again (ms)': trafficMs,
        'requests batch → orders total / failed': `${seen.requests} / ${seen.failures}`,
      },
      verdict: `a new connection with an expired certificate is refused: callers get ${Object.keys(failures).join(', ') || 'no error'} (fail closed, no plaintext fallback); a connection made before expiry keeps serving (TLS checks validity at the handshake); renewal resumes ${certsMs} ms and traffic ${trafficMs} ms after the control plane is back`,
    })

    expect(Object.keys(failures).length).toBeGreaterThan(0)
    // Fail closed with a proxy-generated answer that says why, never a hang or a plaintext fallback.
    for (const o of Object.keys(failures)) expect(o).toMatch(/^503 U[FH]|^503 /)
    expect(expired.certsFrontend.expiresInSeconds).toBeLessThanOrEqual(0)
    expect(expired.gaugeOrders).toBeLessThanOrEqual(0)
    expect(after.gauge).toBeGreaterThan(0)
    expect(seen.outcomes['200']).toBeGreaterThan(0)
    expect(pooled.outcomes['200']).toBeGreaterThan(0)
  })
})
