// Runs every vitest project and ends with one plain summary line ("N passed, N failed").
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const report = join(mkdtempSync(join(tmpdir(), 'burrow-test-')), 'report.json')
const result = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
})
let passed = 0
let failed = 0
let skipped = 0
try {
  const json = JSON.parse(readFileSync(report, 'utf8'))
  passed = json.numPassedTests
  failed = json.numFailedTests
  skipped = json.numPendingTests + (json.numTodoTests ?? 0)
} catch {
  failed += 1
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(result.status === 0 && failed === 0 && passed > 0 ? 0 : 1)
