// Traffic interception for a pod (`remora init-iptables`): the NAT rules as data, and writing or
// removing them with iptables. Imports nothing else from the repo.
export { CHAINS, HOOKS, InterceptionError, checkOptions, cleanupCommands, interceptionRules, type InterceptionOptions } from './rules.js'
export { DEFAULT_BINARIES, IptablesError, applyInterception, removeInterception, type IptablesBinaries } from './apply.js'
