import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import type net from 'node:net'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { OriginalDst } from '../pipeline/index.js'
import { NativeError } from './errors.js'

/** Where `node-gyp rebuild` (binding.gyp, the root package's `install` script) writes the addon, from the package root. */
export const ADDON_FILE = 'build/Release/original_dst.node'

/** What native/original_dst.cc exports. */
interface Addon {
  /** Throws an Error with `errno` when getsockopt fails. */
  originalDst(fd: number, family: 4 | 6): OriginalDst
}

export type NativeStatus = { readonly ok: true } | { readonly ok: false; readonly reason: string }

type Loaded = { readonly ok: true; readonly addon: Addon } | { readonly ok: false; readonly reason: string }

const FIX = 'run `npm rebuild` or `npm run build:native` in the remora package (it needs g++, make and python3)'

// The package root is two folders up from proxy/native (run from source) and three from
// dist/proxy/native (built): the first that holds the addon wins.
const CANDIDATES = ['../../', '../../../'].map((up) => fileURLToPath(new URL(up + ADDON_FILE, import.meta.url)))

/** Loads the addon from the first of `candidates` that exists; never throws. */
export function loadAddon(candidates: readonly string[] = CANDIDATES): Loaded {
  const file = candidates.find((f) => existsSync(f))
  if (file === undefined) return { ok: false, reason: `the native addon ${ADDON_FILE} is missing: ${FIX}` }
  try {
    const addon = createRequire(import.meta.url)(file) as Partial<Addon>
    if (typeof addon.originalDst !== 'function') return { ok: false, reason: `${file} is not remora's native addon (no originalDst): ${FIX}` }
    return { ok: true, addon: addon as Addon }
  } catch (err) {
    return { ok: false, reason: `the native addon ${file} does not load (${(err as Error).message}): ${FIX}` }
  }
}

let loaded: Loaded | null = null
const current = (): Loaded => (loaded ??= loadAddon())

/** Whether the addon loaded (once, on first use); when not, the reason names the fix. */
export function nativeStatus(): NativeStatus {
  const l = current()
  return l.ok ? { ok: true } : { ok: false, reason: l.reason }
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]))
// Not redirected: no NAT entry for this connection (ENOENT), or no conntrack in this kernel or
// namespace at all (ENOPROTOOPT).
const NOT_REDIRECTED = new Set([constants.errno.ENOENT, constants.errno.ENOPROTOOPT])

const unmapped = (ip: string): string => (ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip.toLowerCase())

/**
 * Where `socket` was headed before iptables redirected it to this listener (SO_ORIGINAL_DST), or
 * null when it was not redirected: no NAT entry, or the original destination is the socket's own
 * local address (a direct connection the kernel still tracks). An IPv4-mapped connection on a
 * dual-stack listener asks the IPv4 option and answers family 4.
 * Throws REMORA_ERR_NATIVE_ADDON_MISSING (nativeStatus() says why) or REMORA_ERR_NATIVE_ORIGINAL_DST.
 */
export function originalDst(socket: net.Socket): OriginalDst | null {
  const l = current()
  if (!l.ok) throw new NativeError('REMORA_ERR_NATIVE_ADDON_MISSING', l.reason)
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  const local = socket.localAddress
  if (typeof fd !== 'number' || fd < 0 || local === undefined) {
    throw new NativeError('REMORA_ERR_NATIVE_ORIGINAL_DST', 'the socket has no file descriptor (closed, or not a TCP socket)')
  }
  const family = local.includes(':') && unmapped(local).includes(':') ? 6 : 4
  let od: OriginalDst
  try {
    od = l.addon.originalDst(fd, family)
  } catch (err) {
    const errno = (err as { errno?: unknown }).errno
    if (typeof errno !== 'number') throw new NativeError('REMORA_ERR_NATIVE_ORIGINAL_DST', (err as Error).message, { cause: err })
    if (NOT_REDIRECTED.has(errno)) return null
    throw new NativeError('REMORA_ERR_NATIVE_ORIGINAL_DST', `${(err as Error).message} (${ERRNO_NAMES.get(errno) ?? `errno ${errno}`})`, { cause: err })
  }
  if (od.port === socket.localPort && od.address === unmapped(local)) return null
  return od
}
