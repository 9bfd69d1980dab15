import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseRelayMapText, readRelayMapFile, RelayMapError } from './relay-map.ts'

const good = {
  regions: [
    {
      id: 1,
      code: 'fra',
      name: 'Frankfurt',
      nodes: [
        { name: 'fra1', url: 'https://fra1.example' },
        { url: 'wss://fra2.example/derp', stunPort: 3478 },
      ],
    },
    { id: 900, code: 'lab', nodes: [{ name: 'lab', url: 'http://127.0.0.1:8080' }], avoid: true },
  ],
}

function errorOf(value: unknown): RelayMapError {
  try {
    parseRelayMapText(typeof value === 'string' ? value : JSON.stringify(value), 'map.json')
  } catch (error) {
    if (error instanceof RelayMapError) return error
    throw error
  }
  throw new Error('expected a RelayMapError')
}

describe('relay map file', () => {
  it('reads regions with their relays, defaulting names (region: its code, relay: code + index)', () => {
    expect(parseRelayMapText(JSON.stringify(good), 'map.json')).toEqual({
      regions: [
        {
          id: 1,
          code: 'fra',
          name: 'Frankfurt',
          nodes: [
            { name: 'fra1', url: 'https://fra1.example' },
            { name: 'fra2', url: 'wss://fra2.example/derp', stunPort: 3478 },
          ],
        },
        { id: 900, code: 'lab', name: 'lab', nodes: [{ name: 'lab', url: 'http://127.0.0.1:8080' }], avoid: true },
      ],
    })
  })

  it('rejects a bad map with an error that names the file and the field', () => {
    const cases: Array<[unknown, string, RegExp]> = [
      ['{', '', /^map\.json: not valid JSON/],
      [[], 'the relay map', /the relay map must be an object/],
      [{ regions: [] }, 'regions', /regions must be a non-empty array/],
      [{ regions: [{ ...good.regions[0], id: 0 }] }, 'regions[0].id', /regions\[0\]\.id must be 1–2147483647, got 0/],
      [{ regions: [good.regions[0], { ...good.regions[1], id: 1 }] }, 'regions[1].id', /regions\[1\]\.id 1 is used by another region/],
      [{ regions: [{ ...good.regions[0], code: 'f r a' }] }, 'regions[0].code', /regions\[0\]\.code must be letters/],
      [{ regions: [{ ...good.regions[0], nodes: [] }] }, 'regions[0].nodes', /regions\[0\]\.nodes must be a non-empty array of relays/],
      [{ regions: [{ ...good.regions[0], nodes: [{ url: 'ftp://x' }] }] }, 'regions[0].nodes[0].url', /regions\[0\]\.nodes\[0\]\.url must be an http\(s\) or ws\(s\) URL/],
      [{ regions: [{ ...good.regions[0], nodes: [{ url: 'http://x', stunPort: 70000 }] }] }, 'regions[0].nodes[0].stunPort', /stunPort must be a UDP port/],
      [{ regions: [{ ...good.regions[0], avoid: 'yes' }] }, 'regions[0].avoid', /regions\[0\]\.avoid must be true or false/],
      [
        { regions: [good.regions[0], { id: 2, code: 'dup', nodes: [{ url: 'wss://fra1.example/derp' }] }] },
        'regions[1].nodes[0].url',
        /regions\[1\]\.nodes\[0\]\.url names the same relay as regions\[0\]\.nodes\[0\]\.url/,
      ],
    ]
    for (const [value, field, message] of cases) {
      const error = errorOf(value)
      expect(error.message).toMatch(/^map\.json: /)
      expect(error.message).toMatch(message)
      expect(error.field).toBe(field)
    }
  })

  it('reads a file, and says which file it cannot read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-map-'))
    try {
      writeFileSync(join(dir, 'map.json'), JSON.stringify(good))
      expect((await readRelayMapFile(join(dir, 'map.json'))).regions.map((r) => r.id)).toEqual([1, 900])
      await expect(readRelayMapFile(join(dir, 'missing.json'))).rejects.toThrow(/cannot read the relay map .*missing\.json/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
