// Traffic interception for a pod (`remora init-iptables`): the NAT rules as data, for IPv4 and
// IPv6, and writing or removing them with iptables / ip6tables. Imports only the error factory.
export { CHAINS, HOOKS, InterceptionError, SIDECAR_PORTS, checkOptions, cidrFamily, cleanupCommands, dryRunRules, interceptionRules, ownPorts, type InterceptionOptions, type IpFamily } from './rules.js'
export { DEFAULT_HOST, IptablesError, applyInterception, removeInterception, type InterceptionHost } from './apply.js'
