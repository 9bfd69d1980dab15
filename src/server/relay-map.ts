// The operator's relay map for `burrow relay --relay-map FILE`: regions (id, code, name), each
// with one or more relays, the shape of Tailscale's DERP map (tailcfg.DERPMap → DERPRegion →
// DERPNode) reduced to what Burrow's nodes use. The relays of one region are meshed with each
// other (`--mesh-with`), so a node may log in to any of them; regions are not meshed, a node
// reaches a peer homed elsewhere through a connection to the peer's region.
//
// The file is JSON:
//   { "regions": [ { "id": 1, "code": "fra", "name": "Frankfurt", "avoid": false,
//                    "nodes": [ { "name": "fra1", "url": "https://fra1.relay.example", "stunPort": 3478 } ] } ] }
// `url` is the relay's base URL (or its DERP URL, wss://…/derp). Validation: parseRelayMap in
// src/control/protocol.ts, the same one nodes run on the welcome that hands the map out.
import { readFile } from 'node:fs/promises'
import { parseRelayMap, ProtocolError, type RelayMapEntry } from '../control/protocol.ts'

export class RelayMapError extends Error {
  override readonly name = 'RelayMapError'
  constructor(
    message: string,
    /** The offending field (`regions[0].nodes[1].url`), or '' for the file itself. */
    readonly field: string,
  ) {
    super(message)
  }
}

/** Parses and validates relay-map JSON text; `source` (the file name) starts every error message. */
export function parseRelayMapText(text: string, source: string): RelayMapEntry {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new RelayMapError(`${source}: not valid JSON (${(error as Error).message})`, '')
  }
  try {
    return parseRelayMap(value, '')
  } catch (error) {
    if (error instanceof ProtocolError) throw new RelayMapError(`${source}: ${error.message}`, error.field)
    throw error
  }
}

export async function readRelayMapFile(path: string): Promise<RelayMapEntry> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new RelayMapError(`cannot read the relay map ${path}: ${(error as Error).message}`, '')
  }
  return parseRelayMapText(text, path)
}
