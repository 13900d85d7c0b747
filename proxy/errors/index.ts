// SHARED LEAF: the error factory every area uses (defineErrors, RemoraError, isRemoraError,
// hasCode). Imports nothing; proxy/ and control-plane/ both import this index.
export { RemoraError, catalogError, defineErrors, hasCode, isRemoraError, type DefinedErrors, type ErrorCatalog, type ErrorSpec } from './define.js'
