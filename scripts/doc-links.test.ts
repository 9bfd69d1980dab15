// A clone alone is complete: the docs' relative links resolve to files inside the repository, and
// nothing points outside it to a sibling folder of notes.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const tracked = (...patterns: string[]): string[] =>
  execFileSync('git', ['ls-files', ...patterns], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)

/** Relative link targets in a markdown file: `[text](target)` outside fenced code blocks. */
export function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '')
  const targets: string[] = []
  for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1]!
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue
    targets.push(target)
  }
  return targets
}

function brokenLinks(file: string): string[] {
  const broken: string[] = []
  for (const target of relativeLinks(readFileSync(join(ROOT, file), 'utf8'))) {
    const path = resolve(ROOT, dirname(file), decodeURIComponent(target.split('#')[0]!))
    const inside = !relative(ROOT, path).startsWith('..')
    if (!inside || !existsSync(path)) broken.push(`${file}: ${target}${inside ? ' does not exist' : ' leaves the repository'}`)
  }
  return broken
}

describe('documentation links', () => {
  it('finds relative links and skips URLs, anchors and code blocks', () => {
    expect(relativeLinks('see [a](docs/A.md#x), [b](https://x.y/z), [c](#top)\n```\n[d](nope.md)\n```\n[e](../up.md "title")')).toEqual(['docs/A.md#x', '../up.md'])
  })

  it("README.md's relative links all resolve to files in the repository", () => {
    expect(relativeLinks(readFileSync(join(ROOT, 'README.md'), 'utf8')).length).toBeGreaterThan(3)
    expect(brokenLinks('README.md')).toEqual([])
  })

  it('every other tracked markdown file links only inside the repository', () => {
    expect(
      tracked('*.md')
        .filter((f) => f !== 'README.md')
        .flatMap(brokenLinks),
    ).toEqual([])
  })

  it('no tracked file sends readers to the shared notes folder outside the repository', () => {
    const outside = ['..', 'shared', ''].join('/')
    const hits = tracked().filter((f) => !f.endsWith('package-lock.json') && existsSync(join(ROOT, f)) && readFileSync(join(ROOT, f), 'utf8').includes(outside))
    expect(hits).toEqual([])
  })
})
