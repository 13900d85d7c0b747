// The runtime store owns the swap: one assignment per version, announced on diagnostics_channel
// (remora:runtime:swap) and to onSwap listeners; requests after it run on the new state.
import diagnostics from 'node:diagnostics_channel'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { SWAP_CHANNEL, type SwapEvent } from '../../../proxy/runtime/index.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'
import { mtlsRequest, policiesFromYaml, startSidecar, type TestSidecar } from '../../helpers/mesh.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'

let pki: TestPki
let app: Upstream
let orders: TestSidecar

const DENY_ALL = `apiVersion: security.remora.dev/v1
kind: AuthorizationPolicy
metadata: { name: deny-all, namespace: shop }
spec: {}
`

beforeAll(async () => {
  pki = await createTestPki()
  app = await startUpstream((_req, res) => res.end('ok'))
  orders = await startSidecar({ pki, serviceAccount: 'orders', app: app.address })
})
afterAll(async () => {
  await orders?.close()
  await app?.close()
})

test('a swap is published on diagnostics_channel and to onSwap, with the previous version; requests then run on the new state', async () => {
  const seen: SwapEvent[] = []
  const onMessage = (m: unknown): void => void seen.push(m as SwapEvent)
  diagnostics.subscribe(SWAP_CHANNEL, onMessage)
  const viaListener: string[] = []
  const off = orders.sidecar.onSwap((v) => viaListener.push(v))
  try {
    const before = orders.sidecar.version
    const frontend = await pki.issue('spiffe://cluster.local/ns/shop/sa/frontend')
    const allowed = await mtlsRequest(orders.inbound, frontend, pki.caPem)
    expect(allowed.refused ? 0 : allowed.status).toBe(200)

    const v = orders.sidecar.applyPolicies(policiesFromYaml(DENY_ALL))
    expect(seen).toEqual([{ version: v, previous: before, configured: true }])
    expect(viaListener).toEqual([v])
    const denied = await mtlsRequest(orders.inbound, frontend, pki.caPem)
    expect(denied.refused ? 0 : denied.status).toBe(403)
  } finally {
    off()
    diagnostics.unsubscribe(SWAP_CHANNEL, onMessage)
  }
})
