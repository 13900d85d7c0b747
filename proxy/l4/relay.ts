import type net from 'node:net'

// Bytes both ways between two connections, as a TCP proxy moves them: back-pressure (a side that
// cannot take more pauses the other), half-close (a FIN from one side is passed on as a FIN, and
// the other direction keeps flowing until it closes too), and an idle timeout over both directions.

export interface RelayResult {
  /** Bytes read from the downstream (the caller) and written upstream. */
  received: number
  /** Bytes read from the upstream and written to the downstream. */
  sent: number
  /** Who ended it: both sides closed cleanly, a side reset/failed, or nothing moved for idleMs. */
  end: 'closed' | 'downstream_error' | 'upstream_error' | 'idle'
}

export function relay(down: net.Socket, up: net.Socket, idleMs: number): Promise<RelayResult> {
  return new Promise((resolve) => {
    const r: RelayResult = { received: 0, sent: 0, end: 'closed' }
    let downEnded = false
    let upEnded = false
    let done = false
    const finish = (end: RelayResult['end']): void => {
      if (done) return
      done = true
      r.end = end
      down.setTimeout(0)
      if (end !== 'closed') {
        down.destroy()
        up.destroy()
      }
      resolve(r)
    }
    down.on('data', (c: Buffer) => {
      r.received += c.length
      if (!up.write(c)) down.pause()
    })
    up.on('data', (c: Buffer) => {
      r.sent += c.length
      if (!down.write(c)) up.pause()
    })
    up.on('drain', () => down.resume())
    down.on('drain', () => up.resume())
    down.on('end', () => {
      downEnded = true
      up.end()
    })
    up.on('end', () => {
      upEnded = true
      down.end()
    })
    down.on('error', () => finish('downstream_error'))
    up.on('error', () => finish('upstream_error'))
    // A side closed: clean when both had sent their FIN, a reset otherwise.
    down.on('close', () => (downEnded && upEnded ? waitClose(up, () => finish('closed')) : finish(downEnded ? 'upstream_error' : 'downstream_error')))
    up.on('close', () => (downEnded && upEnded ? waitClose(down, () => finish('closed')) : finish(upEnded ? 'downstream_error' : 'upstream_error')))
    // The downstream socket sees activity in both directions (it reads one and writes the other).
    down.setTimeout(idleMs, () => finish('idle'))
    down.resume()
    up.resume()
  })
}

function waitClose(s: net.Socket, cb: () => void): void {
  if (s.destroyed) cb()
  else s.once('close', cb)
}
