// The one way remora defines errors (CONVENTIONS.md habit 2, fastify's and undici's model): an
// area writes its catalog once (code → status, message, and for proxy-generated responses the
// flag), its error class extends RemoraError, and callers match on `err.code`, never on a class.

/** One catalog entry: the HTTP status and the stable message; `flag` for proxy-generated responses. */
export interface ErrorSpec {
  readonly status: number
  readonly message: string
  readonly flag?: string
}

export type ErrorCatalog = Readonly<Record<string, ErrorSpec>>

/** Every remora error: a stable code (`REMORA_ERR_<AREA>_<WHAT>`), an HTTP status, a message safe to show (no secret). */
export class RemoraError<C extends string = string> extends Error {
  readonly code: C
  readonly status: number

  constructor(code: C, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.status = status
  }
}

/** A remora error from any area (structural: a `REMORA_ERR_` code and a status), whatever realm or copy made it. */
export function isRemoraError(err: unknown): err is RemoraError {
  if (typeof err !== 'object' || err === null) return false
  const e = err as { code?: unknown; status?: unknown }
  return typeof e.code === 'string' && e.code.startsWith('REMORA_ERR_') && typeof e.status === 'number'
}

/** `err` carries one of these codes. */
export function hasCode(err: unknown, ...codes: readonly string[]): err is RemoraError {
  return isRemoraError(err) && codes.includes(err.code)
}

export interface DefinedErrors<T extends ErrorCatalog> {
  readonly catalog: T
  /** The catalog's message, with the detail after it. */
  message(code: keyof T & string, detail?: string): string
  /** `err` is one of this catalog's errors: matched on its code, never on its class. */
  has(err: unknown): err is RemoraError<keyof T & string>
}

/** One area's errors. The catalog is the source of truth; docs/errors.md lists every code (a test keeps both in sync). */
export function defineErrors<const T extends ErrorCatalog>(catalog: T): DefinedErrors<T> {
  return {
    catalog,
    message: (code, detail) => (detail ? `${catalog[code]!.message}: ${detail}` : catalog[code]!.message),
    has: (err): err is RemoraError<keyof T & string> => isRemoraError(err) && Object.hasOwn(catalog, err.code),
  }
}

/**
 * The error class of one catalog: `class CaError extends catalogError(CA_ERRORS) {}` is the whole
 * definition. `new CaError(code, detail)` takes its status and message from the catalog;
 * `CaError.is(err)` matches on the code (any of the catalog's), never on the class.
 */
export function catalogError<const T extends ErrorCatalog>(catalog: T) {
  const defined = defineErrors(catalog)
  return class CatalogError extends RemoraError<keyof T & string> {
    static readonly catalog: T = catalog
    constructor(code: keyof T & string, detail?: string, options?: { cause?: unknown }) {
      super(code, catalog[code]!.status, defined.message(code, detail), options)
    }
    /** `err` is one of this catalog's errors (matched on its code). */
    static is<E>(this: abstract new (...args: never[]) => E, err: unknown): err is E {
      return defined.has(err)
    }
  }
}
