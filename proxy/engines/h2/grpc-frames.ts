// Counts gRPC's length-prefixed messages in a body as it streams past (gRPC over HTTP/2: each
// message is a 1-byte compressed flag, a 4-byte big-endian length, then that many bytes). Nothing
// is copied or buffered: the counter walks the prefixes and skips the payloads, across chunk
// boundaries, so a prefix split over two DATA frames counts once. A message counts when its prefix
// is complete (Envoy's grpc_stats counts frames the same way, as their headers arrive).

const PREFIX = 5

export class GrpcMessageCounter {
  /** Messages whose prefix was complete. */
  messages = 0
  /** Payload bytes of the current message still to skip (0: the next byte is part of a prefix). */
  #skip = 0
  /** Prefix bytes read so far (0..4) and the length they spell. */
  #prefixRead = 0
  #length = 0

  /** Walks one chunk; returns how many messages it started (their prefixes completed in it). */
  push(chunk: Uint8Array): number {
    const before = this.messages
    const n = chunk.length
    let i = 0
    while (i < n) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, n - i)
        this.#skip -= take
        i += take
        continue
      }
      // Reading a prefix: byte 0 is the flag, bytes 1..4 the length.
      const b = chunk[i++]!
      if (this.#prefixRead > 0) this.#length = this.#length * 256 + b
      if (++this.#prefixRead === PREFIX) {
        this.messages++
        this.#skip = this.#length
        this.#prefixRead = 0
        this.#length = 0
      }
    }
    return this.messages - before
  }
}
