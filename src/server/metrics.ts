// Relay counters, rendered in the Prometheus text exposition format for /metrics.

export type DropReason =
  | 'unknown_dest'
  | 'queue_full_oldest'
  | 'queue_full_newest'
  | 'queue_full_over_share'
  | 'rate_limited'
  | 'handshake_rate_limited'
  | 'gone'
  | 'mesh_unavailable'
  | 'unknown_dest_on_forward'

export class RelayMetrics {
  clients = 0
  homeClients = 0
  connectionsAccepted = 0
  packetsForwarded = 0
  bytesForwarded = 0
  /** Control frames (pongs, keepalives, PeerGone) not queued because the client was not reading them. */
  controlDropped = 0
  /** Connections refused with 503 because a connection limit was reached. */
  connectionsRefused = 0
  /** Packets handed to a mesh peer (ForwardPacket out) and received from one (ForwardPacket in). */
  packetsMeshForwardedOut = 0
  packetsMeshForwardedIn = 0
  /** Mesh connections to the other relays of the region that are logged in. */
  meshPeersConnected = 0
  readonly drops = new Map<DropReason, number>()
  readonly closes = new Map<string, number>()
  /** More exposition text for the same /metrics page (the STUN server's counters). */
  readonly extra: Array<() => string> = []

  drop(reason: DropReason, count = 1): void {
    if (count > 0) this.drops.set(reason, (this.drops.get(reason) ?? 0) + count)
  }

  closed(kind: string): void {
    this.closes.set(kind, (this.closes.get(kind) ?? 0) + 1)
  }

  render(): string {
    const lines: string[] = []
    const metric = (name: string, type: string, help: string, samples: Array<[string, number]>): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`)
    }
    metric('burrow_relay_clients', 'gauge', 'Logged-in DERP clients.', [['', this.clients]])
    metric('burrow_relay_home_clients', 'gauge', 'Clients that named this relay their home.', [['', this.homeClients]])
    metric('burrow_relay_connections_accepted_total', 'counter', 'Connections accepted.', [['', this.connectionsAccepted]])
    metric('burrow_relay_packets_forwarded_total', 'counter', 'Packets queued to a destination client.', [['', this.packetsForwarded]])
    metric('burrow_relay_bytes_forwarded_total', 'counter', 'Packet bytes queued to a destination client.', [['', this.bytesForwarded]])
    metric('burrow_relay_control_frames_dropped_total', 'counter', 'Control frames not queued to a client that was not reading.', [['', this.controlDropped]])
    metric('burrow_relay_connections_refused_total', 'counter', 'Connections refused with 503 at a connection limit.', [['', this.connectionsRefused]])
    metric('burrow_relay_mesh_packets_forwarded_total', 'counter', 'Packets exchanged with other relays of the region (ForwardPacket).', [
      ['{direction="out"}', this.packetsMeshForwardedOut],
      ['{direction="in"}', this.packetsMeshForwardedIn],
    ])
    metric('burrow_relay_mesh_peers', 'gauge', 'Mesh connections to other relays of the region that are logged in.', [['', this.meshPeersConnected]])
    const reasons: DropReason[] = [
      'unknown_dest',
      'queue_full_oldest',
      'queue_full_newest',
      'queue_full_over_share',
      'rate_limited',
      'handshake_rate_limited',
      'gone',
      'mesh_unavailable',
      'unknown_dest_on_forward',
    ]
    metric(
      'burrow_relay_packets_dropped_total',
      'counter',
      'Packets dropped, by reason.',
      reasons.map((r) => [`{reason="${r}"}`, this.drops.get(r) ?? 0]),
    )
    metric(
      'burrow_relay_connections_closed_total',
      'counter',
      'Connections closed, by kind.',
      [...this.closes].map(([k, v]) => [`{kind="${k}"}`, v]),
    )
    for (const render of this.extra) lines.push(render())
    return lines.join('\n') + '\n'
  }
}
