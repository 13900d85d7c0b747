// upstream (the node-http engine's terminal). Only what can be tested without a socket lives here:
// the guard when no route was chosen. Forwarding itself (streaming both ways, failure → flag
// mapping, secure naming, upgrades) needs a real upstream and is covered by test/integration/
// (forwarding, streaming, errors, mtls), which the engine-node-http project runs on this terminal.
import { describe, expect, test } from 'vitest'
import { createUpstreamHandler } from '../../../proxy/engines/node-http/index.js'
import { proxyErrorOf, sanitizedContext } from './context.js'

describe('upstream (node-http terminal)', () => {
  test('no route chosen: 500 REMORA_ERR_INTERNAL, nothing written to the response', async () => {
    const ctx = sanitizedContext({})
    expect(ctx.route).toBeNull()
    const err = await proxyErrorOf(createUpstreamHandler()(ctx))
    expect(err).toMatchObject({ code: 'REMORA_ERR_INTERNAL', status: 500, detail: 'no route chosen' })
    expect(ctx.res.heads).toHaveLength(0)
  })
})
