// The node:http front shared by the inbound and outbound listeners: the strict llhttp server
// (smuggling-safe framing, 60 KiB header limit) and the per-connection/per-request context.
// It builds on pipeline/ and the identity leaf only; listeners, stages and upstream build on it.
export { createHttpFront, MAX_HEADER_BYTES, kParserError, kDispatched, parserErrorCode, rawResponse, type FrontSocket, type HttpFrontOptions } from './server.js'
export { createContext, setConnectionInfo, type ConnectionInfo, type ContextRequest } from './context.js'
