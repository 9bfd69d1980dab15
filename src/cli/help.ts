import { type Command } from './io.ts'

export const USAGE = `usage: burrow <command> [options]

commands:
  keygen                     print a new private key (base64, like wg genkey)
  pubkey                     read a private key on stdin, print its public key (like wg pubkey)
  ping --config FILE [--count N] [--interval S] [--timeout S] ADDRESS
                             ICMP/ICMPv6 echo to ADDRESS through the WireGuard tunnel described by
                             the wg-quick FILE, over UDP (N requests, default 4, S seconds apart,
                             default 1; waits up to --timeout S, default 5, for the last replies;
                             ^C stops early). Exits 0 when at least one reply came back, 1 when
                             none did, 2 for bad arguments or a bad config file
  fetch --config FILE [-o FILE] [--timeout S] URL
                             HTTP/1.1 GET of URL through the WireGuard tunnel described by the
                             wg-quick FILE, with Burrow's TCP/IP stack; status line on stderr, body
                             on stdout or FILE. Exits 1 on HTTP >= 400 or a network error
  relay [--listen HOST:PORT] [--data-dir DIR] [--verify-clients] [--rate-limit B/S --rate-burst B] …
                             the relay: DERP at /derp, coordination at /control, /healthz, /metrics
                             ("burrow relay --help" for every flag)
  relay authkey create [--reusable] [--ephemeral] [--expires DURATION] [--data-dir DIR]
                             print a new auth key for the relay's network
  relay authkey list|revoke ID|KEY, relay nodes list|remove ID|HOSTNAME|NODEKEY
                             list and revoke auth keys, list and remove registered nodes
  up --control URL [--authkey KEY] [--hostname NAME] [--state-dir DIR] [--serve PORT=HOST:PORT]…
     [--serve-udp PORT=HOST:PORT]… [--allow CIDR|ADDRESS|HOSTNAME]… [--udp-idle S] [--ephemeral]
     [--pcap FILE] [--log-level debug|info|warn|error] [--no-direct] [--home-region N]
     [--control-key mkey:…] [--derp-over-http]
                             join the network as a Node peer and stay connected (reconnecting as
                             needed); overlay TCP port PORT is bridged to the local HOST:PORT
                             (--serve; PORT=PORT means 127.0.0.1), UDP likewise with one local
                             socket per remote, closed after S seconds idle (default 60). --allow
                             (repeatable) admits only those peers, others get a reset; default is
                             every node. The key lives in DIR (default ~/.local/state/burrow,
                             mode 0600); --ephemeral keeps it in memory only (use an --ephemeral
                             auth key to have the node removed when it leaves). --pcap writes
                             the overlay's packets to FILE (pcap, tcpdump -r reads it). Peers move
                             to a direct WebRTC path (@roamhq/wrtc) when one answers; --no-direct
                             keeps every peer on its relay. The home relay region is the one
                             measured fastest (--home-region N: that one while it is up); the
                             node re-homes when its relay dies. An hskey-/tskey- auth key joins a
                             Tailscale-protocol tailnet (Headscale) at URL instead; --control-key
                             pins its Noise key, --derp-over-http (or TS_DEBUG_USE_DERP_HTTP=1, as
                             for tailscaled) dials its DERP servers without TLS (test tailnets).
                             Logs are JSON lines on stdout (debug adds one line per overlay packet,
                             dropped disco and filtered packets); ^C/SIGTERM closes connections
                             and leaves
  status [--state-dir DIR] [--json]
                             the peers of the running "burrow up" (address, name, online, path,
                             RTT, bytes) from DIR/status.json, which it rewrites every second
  start [--relay-port N] [--port N] [--proxy-port N] [--data-dir DIR]
                             what "npm start" runs: a relay on 127.0.0.1 and the demo
  proxy-files [--out DIR]    writes burrow-sw.js and burrow-proxy.html (node.proxy()'s Service
                             Worker and bridge page) into DIR (default ./public)
  help                       this text
`

/** `burrow help` */
export const help: Command = async (_args, io) => {
  io.stdout(USAGE)
  return 0
}
