// The raw results (bench/results/<date>.json) and the summaries the report is made of.
import type { GeneratorResult } from './workloads.js'

export interface RoleUsage {
  readonly cpuSeconds: number
  readonly peakRssBytes: number
}

export interface RunRecord {
  readonly rep: number
  readonly contender: string
  readonly workload: string
  readonly generator: GeneratorResult
  readonly roles: Readonly<Record<string, RoleUsage>>
  /** CPU seconds of every proxy process of the contender during the measured run. */
  readonly proxyCpuSeconds: number
  /** Proxy CPU per completed request, both proxies together (µs); null for `direct`. */
  readonly cpuUsPerRequest: number | null
  /** Peak RSS of the larger of the two proxies during the run (bytes); null for `direct`. */
  readonly peakProxyRssBytes: number | null
  readonly loadAvg1: number
  readonly startedAt: string
}

/** Seconds after start-up (and two probe requests) at which a Node contender's settled idle RSS is taken. */
export const IDLE_SETTLED_S = 20

export interface IdleRecord {
  readonly rep: number
  readonly contender: string
  readonly role: string
  readonly rssBytes: number
  /**
   * `start` (absent in older results): one second after start-up and two probe requests.
   * `settled`: the same process IDLE_SETTLED_S seconds later with no traffic meanwhile (what an idle
   * sidecar holds once V8 has given back what start-up grew); taken for Node contenders only.
   * `rssAnonBytes`/`rssFileBytes` split it (RssAnon, RssFile in /proc/<pid>/status).
   */
  readonly phase?: 'start' | 'settled'
  readonly rssAnonBytes?: number
  readonly rssFileBytes?: number
}

export interface MicroRecord {
  readonly name: string
  readonly file: string
  readonly status: 'ok' | 'missing' | 'failed' | 'skipped'
  readonly seconds?: number
  readonly output?: unknown
  readonly error?: string
  /** Set when re-run later than the run itself (`--from <json> --micro <name>`): the commit it measured. */
  readonly commit?: string
  readonly measuredAt?: string
  readonly dirtyFiles?: readonly string[]
}

export interface BenchResults {
  readonly kind: 'remora-bench'
  readonly schema: 1
  readonly quick: boolean
  readonly startedAt: string
  finishedAt: string
  readonly commit: { sha: string; subject: string; dirtyFiles: string[] }
  readonly machine: Record<string, unknown>
  readonly versions: Record<string, string>
  readonly settings: Record<string, unknown>
  readonly contenders: { name: string; describe: string }[]
  readonly workloads: { name: string; title: string; method: string; seconds: number }[]
  readonly runs: RunRecord[]
  readonly idle: IdleRecord[]
  readonly failures: { rep: number; contender: string; workload: string | null; error: string }[]
  /** Workloads a contender cannot run (no HTTP/2 or TCP in it); absent in runs before issue 15. */
  readonly notApplicable?: { contender: string; workload: string }[]
  micro: MicroRecord[]
  notes: string[]
}

export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export function spread(values: readonly (number | null | undefined)[]): Spread | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = v.length >> 1
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length }
}
