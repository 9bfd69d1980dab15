export { Stack, DEFAULT_MTU, type StackOptions, type ConnectOptions, type ListenOptions, type StackStats } from './stack.ts'
export { StackHost, type StackHostOptions } from './host.ts'
export {
  Sockets,
  TCPSocket,
  TCPServerSocket,
  UDPSocket,
  type SocketsOptions,
  type TcpConnectOptions,
  type TCPSocketOpenInfo,
  type TCPServerSocketOpenInfo,
  type UdpMessage,
  type UdpOptions,
  type UDPSocketOpenInfo,
} from './sockets.ts'
export { TcpConnection, type TcpState, type TcpConnectionEvents, type TcpStats } from './tcp/connection.ts'
export { TcpListener } from './tcp/listener.ts'
export { TcpError, type TcpErrorCode } from './tcp/errors.ts'
export { DEFAULT_TCP_CONFIG, DEFAULT_KEEPALIVE, type TcpConfig, type KeepAliveConfig } from './tcp/config.ts'
export { UdpEndpoint, type UdpDatagramIn } from './udp.ts'
export { PingError } from './icmp.ts'
