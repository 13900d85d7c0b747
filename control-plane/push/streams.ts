import type http from 'node:http'
import type { SignedSnapshot } from './snapshot.js'

/** One connected sidecar's stream: newline-delimited JSON frames on a long-lived chunked response. */
export interface SidecarStream {
  readonly node: string
  readonly identity: string
  readonly address: string
  readonly connectedSince: Date
  readonly res: http.ServerResponse
  /** The version last written to this stream. */
  pushedVersion: string | null
}

export interface PushHub {
  readonly size: number
  add(s: SidecarStream, current: SignedSnapshot | null): void
  remove(s: SidecarStream): void
  get(node: string): SidecarStream | undefined
  /** Writes the snapshot to every stream that does not have it yet; returns how many were sent. */
  broadcast(snap: SignedSnapshot): number
  nodes(): IterableIterator<SidecarStream>
  close(): void
}

export function frame(obj: unknown): string {
  return `${JSON.stringify(obj)}\n`
}

/**
 * Per-replica registry of open streams. A sidecar that reconnects (same node id) replaces its old
 * stream, which is ended: one stream per sidecar, as the design says. The snapshot frame is
 * serialized once per broadcast, not once per stream.
 */
export function createPushHub(o: { pingMs: number; onPush?: (s: SidecarStream, version: string) => void }): PushHub {
  const streams = new Map<string, SidecarStream>()
  const ping = frame({ type: 'ping' })
  const timer = setInterval(() => {
    for (const s of streams.values()) s.res.write(ping)
  }, o.pingMs)
  timer.unref()
  const send = (s: SidecarStream, snap: SignedSnapshot, text: string): void => {
    s.res.write(text)
    s.pushedVersion = snap.version
    o.onPush?.(s, snap.version)
  }
  const snapshotFrame = (snap: SignedSnapshot): string => frame({ type: 'snapshot', version: snap.version, jws: snap.jws })
  return {
    get size() {
      return streams.size
    },
    add(s, current) {
      const old = streams.get(s.node)
      if (old && old !== s) old.res.end()
      streams.set(s.node, s)
      if (current) send(s, current, snapshotFrame(current))
    },
    remove(s) {
      if (streams.get(s.node) === s) streams.delete(s.node)
    },
    get: (node) => streams.get(node),
    broadcast(snap) {
      const text = snapshotFrame(snap)
      let n = 0
      for (const s of streams.values()) {
        if (s.pushedVersion === snap.version) continue
        send(s, snap, text)
        n++
      }
      return n
    },
    nodes: () => streams.values(),
    close() {
      clearInterval(timer)
      for (const s of streams.values()) s.res.end()
      streams.clear()
    },
  }
}
