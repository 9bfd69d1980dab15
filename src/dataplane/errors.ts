export type DataplaneErrorCode = 'bad-prefix' | 'bad-address' | 'unknown-peer' | 'unknown-transport' | 'duplicate-transport' | 'bad-config' | 'stopped'

/** A rejected dataplane operation; thrown before any state changes. */
export class DataplaneError extends Error {
  override readonly name = 'DataplaneError'
  constructor(
    readonly code: DataplaneErrorCode,
    message: string,
  ) {
    super(message)
  }
}
