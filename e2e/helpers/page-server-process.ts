// Runs the e2e page server (Vite, the repository as root) as its own process, so it can live in a
// test-made network namespace: `node --import tsx e2e/helpers/page-server-process.ts HOST CACHE_DIR`
// prints {"url": …} once it listens.
import { startPageServer } from './browser.ts'

const [host, cacheDir] = process.argv.slice(2)
const server = await startPageServer({ host: host!, cacheDir: cacheDir! })
process.stdout.write(JSON.stringify({ url: server.url }) + '\n')
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)))
