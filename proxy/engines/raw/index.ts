// The framing-only forwarding engine (an Engine, see ../engine.ts): raw net/tls sockets where Node's own llhttp only finds message
// boundaries and exposes the head; bodies pass through. Owns its front, pools and terminal handler;
// stages never import it (they see the engine-neutral RequestContext), and it never imports undici.
export { createRawFront, RawFront, type RawFrontOptions } from './front.js'
export { RawPool, RawPoolRegistry, type RawMtlsKey } from './pool.js'
export { createRawUpstreamHandler } from './upstream.js'
export { rawEngine } from './engine.js'
export { rawEngineUnavailable } from './llhttp.js'
