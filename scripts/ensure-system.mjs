// Pre-test step: the suite needs these system tools. As root on Debian we install what is missing;
// otherwise we stop and name it, rather than let tests fail obscurely or skip.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const needed = [
  { command: 'wireguard-go', apt: 'wireguard-go' },
  { command: 'wg', apt: 'wireguard-tools' },
  { command: 'ip', apt: 'iproute2' },
  { command: 'chromium', apt: 'chromium' },
  { command: 'ping', apt: 'iputils-ping' },
  { command: 'python3', apt: 'python3' },
  { command: 'curl', apt: 'curl' },
  { command: 'tcpdump', apt: 'tcpdump' },
  // NAT lab (test/helpers/nat.ts) and the STUN/TURN tests of issue 13.
  { command: 'iptables', apt: 'iptables' },
  { command: 'conntrack', apt: 'conntrack' },
  { command: 'stun', apt: 'stun-client' },
  { command: 'turnserver', apt: 'coturn' },
  // Coordination on PostgreSQL (issue 15): test/helpers/postgres.ts runs initdb/pg_ctl from here.
  { command: '/usr/lib/postgresql/15/bin/postgres', apt: 'postgresql' },
]

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
const missing = needed.filter((n) => !has(n.command))

if (missing.length > 0) {
  const packages = missing.map((m) => m.apt)
  const isRoot = process.getuid?.() === 0
  const isDebian = existsSync('/etc/debian_version')
  if (!isRoot || !isDebian) {
    console.error(`burrow tests need these Debian packages: ${packages.join(' ')}`)
    console.error(`install them with: sudo apt-get install -y ${packages.join(' ')}`)
    process.exit(1)
  }
  console.log(`installing system packages: ${packages.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env })
  const still = missing.filter((n) => !has(n.command))
  if (still.length > 0) {
    console.error(`still missing after apt-get install: ${still.map((s) => s.command).join(' ')}`)
    process.exit(1)
  }
}
if (!existsSync('/dev/net/tun')) {
  console.error('burrow tests need /dev/net/tun (TUN devices) for the wireguard-go interop tests')
  process.exit(1)
}
