import { describe, expect, it } from 'vitest'
import { pairCandidateType } from '../../burrow.ts'
import { selectedCandidateTypes } from './page-agent.ts'

const stats = (entries: Array<Record<string, unknown>>) => new Map(entries.map((e) => [e['id'] as string, e]))

describe('selectedCandidateTypes', () => {
  it('follows the transport’s selectedCandidatePairId to both candidates’ types (Chromium)', () => {
    const report = stats([
      { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP2' },
      { id: 'CP1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'failed' },
      { id: 'CP2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R2', state: 'succeeded', nominated: true },
      { id: 'L1', type: 'local-candidate', candidateType: 'host' },
      { id: 'R1', type: 'remote-candidate', candidateType: 'host' },
      { id: 'L2', type: 'local-candidate', candidateType: 'host' },
      { id: 'R2', type: 'remote-candidate', candidateType: 'srflx' },
    ])
    expect(selectedCandidateTypes(report)).toEqual({ local: 'host', remote: 'srflx' })
  })

  it('falls back to the nominated, succeeded pair, and says unknown for a type it does not know', () => {
    const report = stats([
      { id: 'CP', type: 'candidate-pair', localCandidateId: 'L', remoteCandidateId: 'R', state: 'succeeded', nominated: true },
      { id: 'L', type: 'local-candidate', candidateType: 'relay' },
      { id: 'R', type: 'remote-candidate', candidateType: 'weird' },
    ])
    expect(selectedCandidateTypes(report)).toEqual({ local: 'relay', remote: 'unknown' })
    expect(selectedCandidateTypes(stats([{ id: 'CP', type: 'candidate-pair', state: 'in-progress' }]))).toBeUndefined()
  })

  it('sums a pair up by what says most about the route: relay, then srflx, prflx, host', () => {
    expect(pairCandidateType({ local: 'host', remote: 'host' })).toBe('host')
    expect(pairCandidateType({ local: 'host', remote: 'srflx' })).toBe('srflx')
    expect(pairCandidateType({ local: 'prflx', remote: 'relay' })).toBe('relay')
    expect(pairCandidateType(null)).toBeNull()
  })
})
