// Moved to src/clock/clock.ts (every layer may import it). This re-export only keeps branches
// written against the old path compiling while they merge; import from src/clock instead.
export * from '../clock/clock.ts'
