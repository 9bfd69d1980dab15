// `npm run bench [-- --json FILE] [-- --only PREFIX]`: runs every bench/*.bench.ts and prints a table.
import { readdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Bench, BenchResult } from './types.ts'

const args = process.argv.slice(2)
const jsonIndex = args.indexOf('--json')
const jsonFile = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined
const onlyIndex = args.indexOf('--only')
const only = onlyIndex >= 0 ? args[onlyIndex + 1] : undefined

const here = dirname(fileURLToPath(import.meta.url))
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort()
const results: BenchResult[] = []
for (const file of files) {
  if (only && !file.startsWith(only)) continue
  const bench = (await import(pathToFileURL(join(here, file)).href)).default as Bench
  process.stderr.write(`running ${file}…\n`)
  try {
    for (const result of await bench()) {
      results.push(result)
      process.stderr.write(`  ${result.name}: ${fmt(result.value)} ${result.unit}\n`)
    }
  } catch (error) {
    process.stderr.write(`  ${file} failed: ${(error as Error).stack ?? error}\n`)
    process.exitCode = 1
  }
}

function fmt(n: number | undefined): string {
  if (n === undefined) return ''
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toFixed(3)
}

const rows = [['name', 'value', 'unit', 'baseline', 'ratio'], ...results.map((r) => [r.name, fmt(r.value), r.unit, fmt(r.baseline), fmt(r.ratio)])]
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
for (const [i, row] of rows.entries()) {
  console.log(`| ${row.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`)
  if (i === 0) console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
}
if (jsonFile) {
  const json: Record<string, Omit<BenchResult, 'name'>> = {}
  for (const { name, ...rest } of results) json[name] = rest
  writeFileSync(jsonFile, JSON.stringify(json, null, 2) + '\n')
}
