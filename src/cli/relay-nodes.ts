// `burrow relay nodes list|remove`: the operator's view of registered nodes, run next to a live
// relay on the same data dir. A removal is written to the store; the running relay notices it
// within a few seconds (CoordinationService reconcile), closes that node's session with 410 and
// tells every other node it is gone.
import { defaultDataDir } from './authkey.ts'
import { openCoordinationStore } from '../server/coordination/open-store.ts'
import type { CoordinationStore, NodeRecord } from '../server/coordination/store.ts'
import { parseArgs, UsageError } from './args.ts'
import { EXIT_USAGE, type CliIo } from './io.ts'

export const NODES_USAGE = `usage: burrow relay nodes list [--data-dir DIR | --database URL] [--json]
       burrow relay nodes remove ID|HOSTNAME|NODEKEY [--data-dir DIR | --database URL]
`

/** The node `which` names: an id, a node key (`nodekey:…`) or a hostname. */
export async function findNode(store: CoordinationStore, which: string): Promise<NodeRecord | undefined> {
  if (/^\d+$/.test(which)) return store.nodeById(Number(which))
  if (which.startsWith('nodekey:')) return store.nodeByKey(which)
  const id = await store.hostnameOwner(which)
  return id === undefined ? undefined : store.nodeById(id)
}

function table(nodes: NodeRecord[]): string {
  const rows = [['ID', 'HOSTNAME', 'IPV4', 'IPV6', 'LAST SEEN', 'EPHEMERAL', 'NODE KEY']]
  for (const n of nodes) {
    rows.push([String(n.id), n.hostname, n.ipv4, n.ipv6, n.lastSeen === null ? '-' : new Date(n.lastSeen).toISOString(), n.ephemeral ? 'yes' : 'no', n.nodeKey])
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n'
}

export async function relayNodes(argv: readonly string[], io: Pick<CliIo, 'stdout' | 'stderr'>): Promise<number> {
  const [action, ...rest] = argv
  let dataDir = defaultDataDir()
  let database: string | undefined
  let json = false
  let positionals: string[]
  try {
    if (action !== 'list' && action !== 'remove') throw new UsageError(action === undefined ? 'missing action' : `unknown nodes action ${JSON.stringify(action)}`)
    const withoutJson = rest.filter((a) => a !== '--json')
    json = withoutJson.length !== rest.length
    if (json && action !== 'list') throw new UsageError('--json only applies to nodes list')
    const parsed = parseArgs(withoutJson, ['data-dir', 'database'])
    dataDir = parsed.flags.get('data-dir') ?? dataDir
    database = parsed.flags.get('database')
    positionals = parsed.positionals
    if (action === 'list' && positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
    if (action === 'remove' && positionals.length !== 1) throw new UsageError('nodes remove needs exactly one node: its ID, HOSTNAME or NODEKEY')
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`burrow relay nodes: ${error.message}\n${NODES_USAGE}`)
    return EXIT_USAGE
  }
  let store: CoordinationStore
  try {
    store = await openCoordinationStore({ dataDir, database })
  } catch (error) {
    io.stderr(`burrow relay nodes: cannot open the coordination store ${database === undefined ? `in ${dataDir}` : '(--database)'}: ${(error as Error).message}\n`)
    return 1
  }
  try {
    if (action === 'list') {
      const nodes = await store.allNodes()
      io.stdout(json ? `${JSON.stringify(nodes)}\n` : table(nodes))
      return 0
    }
    const node = await findNode(store, positionals[0]!)
    if (node === undefined) {
      io.stderr(`burrow relay nodes: no registered node is ${JSON.stringify(positionals[0])} (try burrow relay nodes list)\n`)
      return 1
    }
    await store.deleteNode(node.id)
    io.stderr(`removed node ${node.id} (${node.hostname}, ${node.ipv4}); a running relay disconnects it within a few seconds\n`)
    return 0
  } finally {
    await store.close()
  }
}
