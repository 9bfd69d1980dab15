// Run as its own process (`node --import tsx test/helpers/update-flood.ts URL AUTHKEY COUNT INTERVAL_MS`):
// COUNT members join the network and, once "flood" arrives on stdin, each sends an update (a new
// random disco key) every INTERVAL_MS until "stop" arrives or stdin closes. Prints "ready" once
// every member is in. A separate process, so the flood's own CPU is not charged to the pair measured.
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { generateKeyPair } from '../../src/crypto/index.ts'
import { CoordinationClient } from '../../src/control/coordination-client.ts'

const [url, authKey, countText, intervalText] = process.argv.slice(2)
const members = Array.from({ length: Number(countText) }, (_, i) => {
  const client = new CoordinationClient({ url: url!, nodeKeyPair: generateKeyPair(), discoPublicKey: randomBytes(32), hostname: `flood-${i}`, authKey: authKey! })
  client.start()
  return client
})
await Promise.all(members.map((m) => m.ready()))
process.stdout.write('ready\n')
let timer: ReturnType<typeof setInterval> | undefined
const stop = () => {
  if (timer !== undefined) clearInterval(timer)
  timer = undefined
}
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line === 'flood' && timer === undefined) {
      timer = setInterval(() => {
        for (const m of members) m.setDiscoKey(randomBytes(32))
      }, Number(intervalText))
    } else if (line === 'stop') stop()
  })
  .on('close', () => {
    stop()
    for (const m of members) m.stop()
    process.exit(0)
  })
