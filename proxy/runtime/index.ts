// The sidecar's runtime: the snapshot compiler (policies + clusters → the state every request runs
// on, both chains included), the one store that owns the swap and publishes it on
// diagnostics_channel, and the labels and JWT settings the compiler derives from the config.
// Imports the stage, pipeline, policy and engine modules it composes; never listeners or admin.
export { compileRuntime, appTarget, type CompileEnv, type CompileInput, type RuntimeState } from './compile.js'
export { RuntimeStore, SWAP_CHANNEL, type SwapEvent } from './state.js'
export { clusterLabels, selfLabels, workloadName } from './labels.js'
export { effectiveJwtSettings, type EffectiveJwtSettings, type SidecarJwtOptions } from './jwt-settings.js'
