export { DataplaneError, type DataplaneErrorCode } from './errors.ts'
export { RouteTable, checkPrefix, type RoutePrefix } from './route-table.ts'
export { MAX_IDLE_SLEEP, nextWakeup } from './wakeup.ts'
export { systemClock, ManualClock, type DriverClock, type Timer } from '../clock/clock.ts'
export type { UnderlayId, OverlayId, Endpoint, UnderlayTransport, OverlayTransport } from './transport.ts'
export {
  DataplaneCore,
  DISCO_MAGIC,
  type DataplaneOptions,
  type DataplanePeerConfig,
  type DataplanePeerStats,
  type DataplaneDropReason,
  type DropCounts,
  type PeerRoute,
  type UnderlayBatch,
  type OverlayBatch,
  type DiscoDatagram,
  type OutboundResult,
  type InboundResult,
  type EventResult,
} from './core.ts'
export { PacketFilter, PacketFilterError, type PacketFilterRuleInput, type FilterVerdict } from './packet-filter.ts'
export { DataplaneDriver, type DriverOptions, type DriverCounters } from './driver.ts'
