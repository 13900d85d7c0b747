import v8 from 'node:v8'
import vm from 'node:vm'

// Why a proxy asks V8 for young-generation collections.
//
// Node allocates a fresh buffer for every socket read (up to 64 KiB for TCP, one per TLS record of
// 16 KiB), and a proxy drops each one as soon as it has written it on: a streamed body turns into
// its own size of dead buffers. Their memory lives outside the JS heap and comes back only when V8
// collects the young generation, which it does when the JS heap fills (a proxy allocates almost no
// JS objects per byte), when 32 MiB of young buffers piled up (V8 11, Node 20), or at the 64 MiB
// external-memory soft limit (V8 14, Node 26, which also holds young collections back while that
// major marking runs). Measured on a sidecar pair, a 100 MiB upload left 35–50 MiB (Node 20) and
// 57–70 MiB (Node 26) of such buffers in RSS; live body data stayed at 2–4 MiB throughout.
//
// Where a proxy can, it does not make that garbage at all: the raw engine reads upstream responses
// (from the app, and from the peer sidecar over mTLS) into reused buffers (`onread`, engines/raw
// pool.ts UpstreamReader), so a 1 MiB response costs no allocation on that side. What still arrives
// in fresh buffers (request bodies read from downstream sockets, which the listeners accept, and
// everything on the node:http and HTTP/2 engines) is counted here.
//
// Counting the body bytes this process forwards in fresh buffers and asking for a young-generation
// collection at every RECLAIM_STEP_BYTES bounds the dead buffers to about one step. A young
// collection with few survivors costs ~0.2–0.5 ms; at loopback speed that is one per ~30 ms of
// streaming, and it spares the major collections V8 would otherwise run at its soft limit.

/** Body bytes forwarded between two young-generation collections. */
export const RECLAIM_STEP_BYTES = 8 * 1024 * 1024

/** V8's `gc` (options as the --expose-gc extension takes them). */
type Gc = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void

let pending = 0
let gcFn: Gc | null | undefined

/**
 * V8's `gc` in a context of its own (the flag is turned off again right away, so no other context
 * gets a `gc` global); null where the runtime does not offer it, and then nothing is forced.
 */
function loadGc(): Gc | null {
  try {
    const own = (globalThis as { gc?: unknown }).gc
    let gc: unknown = own
    if (typeof gc !== 'function') {
      v8.setFlagsFromString('--expose-gc')
      try {
        gc = vm.runInNewContext('gc')
      } finally {
        v8.setFlagsFromString('--no-expose-gc')
      }
    }
    return typeof gc === 'function' ? (gc as Gc) : null
  } catch {
    return null
  }
}

const gcOf = (): Gc | null => (gcFn === undefined ? (gcFn = loadGc()) : gcFn)

/** Called with every body chunk a sidecar forwards that arrived in a fresh buffer (either direction, every engine). */
export function bodyBytesForwarded(n: number): void {
  pending += n
  if (pending < RECLAIM_STEP_BYTES) return
  pending = 0
  gcOf()?.({ type: 'minor' })
}

const V8_MAJOR = Number(process.versions.v8.split('.')[0])

/**
 * One full collection that also returns the space V8 keeps for growth. Start-up (modules, config,
 * policy compilation) grows the young generation, and V8 14 (Node 26) keeps it for good at idle;
 * its last-resort collection gives it back. V8 11 (Node 20) ignores that flavour (and with options
 * does not even clear weak references: measured), so there it is the plain gc(), a full
 * collection; V8 11 gives the young generation back in its own memory reducer after ~10 s idle.
 * A pause of ~40 ms: for an idle moment after start only.
 */
export function compactHeap(): void {
  const gc = gcOf()
  if (gc === null) return
  if (V8_MAJOR >= 12) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  else gc()
}
