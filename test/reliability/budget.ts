// The reliability suite's two forms: `bounded` (what .ci/run runs: fixed seeds, short soak, small
// budgets; minutes) and `full` (REMORA_RELIABILITY=full: the figures for docs/reliability.md).
// Every scenario reads its size from here and records its figures with `recordFigures()`; the
// full run ends by rendering docs/reliability.md from those records (test/reliability/render.ts).
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export type ReliabilityMode = 'bounded' | 'full'

export const MODE: ReliabilityMode = process.env.REMORA_RELIABILITY === 'full' ? 'full' : 'bounded'

/** `bounded` in CI and by default, `full` for the documented figures. */
export function budget<T>(bounded: T, full: T): T {
  return MODE === 'full' ? full : bounded
}

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Where scenario records go: REMORA_RELIABILITY_OUT, default .remora/reliability (git-ignored). */
export const RECORD_DIR = process.env.REMORA_RELIABILITY_OUT ?? join(repo, '.remora', 'reliability')

export type ReliabilitySection = 'fuzz' | 'soak' | 'abuse' | 'faults'

/** One scenario's result as docs/reliability.md shows it. */
export interface ScenarioRecord {
  readonly section: ReliabilitySection
  /** Heading of the scenario (`Fuzz: raw engine, inbound front`). */
  readonly title: string
  /** How to run it alone and what it does, one short paragraph. */
  readonly what: string
  /** The figures as label → value (`executions: 41,233`, `RSS slope after warm-up: 0.02 MB/min`). */
  readonly figures: Readonly<Record<string, string | number>>
  /** The verdict in one line (`no crash, no invariant broken`). */
  readonly verdict: string
  /** Optional table (e.g. RSS samples, per-fault timings). */
  readonly table?: { readonly columns: readonly string[]; readonly rows: readonly (readonly (string | number)[])[] }
}

/**
 * Writes one scenario's record (plain JSON) for the report. `name` is a file-safe id
 * (`fuzz-raw-inbound`, `soak`, `abuse-slowloris`, `fault-etcd-leader`); a later run of the same
 * scenario replaces it.
 */
export function recordFigures(name: string, record: ScenarioRecord): void {
  const file = join(RECORD_DIR, `${name}.json`)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, JSON.stringify({ name, mode: MODE, at: new Date().toISOString(), node: process.version, ...record }, null, 2) + '\n')
}
