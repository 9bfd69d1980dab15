// Fenced code blocks of README.md tagged for testing (```ts readme-node, ```sh readme-cli, …).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const README_PATH = join(import.meta.dirname, '..', '..', 'README.md')

/** The bodies of the fenced blocks whose info string is exactly `<language> <tag>`. */
export function fencedBlocks(markdown: string, language: string, tag: string): string[] {
  const blocks: string[] = []
  const pattern = /^```([^\n]*)\n([\s\S]*?)^```[ \t]*$/gm
  for (const match of markdown.matchAll(pattern)) {
    if (match[1]!.trim().split(/\s+/).join(' ') === `${language} ${tag}`) blocks.push(match[2]!)
  }
  return blocks
}

/** The one README block tagged `<language> <tag>`; throws if there is none or more than one. */
export function readmeBlock(language: string, tag: string): string {
  const blocks = fencedBlocks(readFileSync(README_PATH, 'utf8'), language, tag)
  if (blocks.length !== 1) throw new Error(`README.md should have exactly one \`\`\`${language} ${tag} block, has ${blocks.length}`)
  return blocks[0]!
}

/** Replaces `placeholder`, which must occur exactly once (so a README edit cannot make it a no-op). */
export function replaceOnce(text: string, placeholder: string, value: string): string {
  const count = text.split(placeholder).length - 1
  if (count !== 1) throw new Error(`the README example should contain ${placeholder} exactly once, found ${count}`)
  return text.replace(placeholder, () => value)
}
