/**
 * HTTP/1.1 over any Direct-Sockets-shaped byte stream (`{ readable, writable }`): the client behind
 * `node.fetch(url)`, the server behind `node.serve(port, handler)`, and the sans-IO parser both use.
 */
export {
  httpFetch,
  createHttpClient,
  type HttpClient,
  type HttpFetchOptions,
  type OpenConnection,
  type ClientSocket,
  type PoolOptions,
  type OutgoingRequest,
  type RequestBody,
} from './client.ts'
export { responseFields } from './exchange.ts'
export { serveHttp, type AcceptedConnection, type AcceptedSocket, type HttpHandler, type HttpServer, type RemoteInfo, type ServeHttpOptions } from './server.ts'
export {
  HttpParser,
  DEFAULT_LIMITS,
  type BodyFraming,
  type HeaderList,
  type HttpEvent,
  type HttpParserLimits,
  type MessageHead,
  type RequestHead,
  type ResponseHead,
} from './parser.ts'
export { HttpParseError, HttpConnectionError, type HttpParseErrorCode } from './errors.ts'
export type { ByteStreamSocket } from './connection.ts'
export { openedSocket, type DirectSocketLike, type OpenedSocket } from './direct-socket.ts'
// Node's net.Socket adapter is not re-exported: browser code imports this barrel. Node callers
// import ./node-socket.ts directly.
