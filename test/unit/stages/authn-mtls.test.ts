// authnMtls: the per-request PeerAuthentication re-check (a mode tightened while a plaintext
// keep-alive connection is still open must not leave that connection usable).
import { describe, expect, test } from 'vitest'
import { createAuthnMtlsStage } from '../../../proxy/stages/index.js'
import { peer, proxyErrorOf, recordingNext, sanitizedContext } from './context.js'

describe('authnMtls', () => {
  test('STRICT: a plaintext request is 403 REMORA_ERR_PLAINTEXT_REFUSED and never reaches next', async () => {
    const next = recordingNext()
    const err = await proxyErrorOf(createAuthnMtlsStage('STRICT')(next)(sanitizedContext({ peer: null })))
    expect(err).toMatchObject({ code: 'REMORA_ERR_PLAINTEXT_REFUSED', status: 403, flag: 'DPE' })
    expect(next.calls).toHaveLength(0)
  })

  test('STRICT: a request from a verified peer passes', async () => {
    const next = recordingNext()
    const ctx = sanitizedContext({ peer: peer() })
    await createAuthnMtlsStage('STRICT')(next)(ctx)
    expect(next.calls).toEqual([ctx])
  })

  test.each(['PERMISSIVE', 'DISABLE'] as const)('%s: a plaintext request passes (the stage is left out)', async (mode) => {
    const next = recordingNext()
    const handler = createAuthnMtlsStage(mode)(next)
    expect(handler).toBe(next)
    const ctx = sanitizedContext({ peer: null })
    await handler(ctx)
    expect(next.calls).toEqual([ctx])
  })
})
