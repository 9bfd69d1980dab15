// A CliIo that records output, for command tests.
import { type CliIo } from './io.ts'

export interface RecordingIo extends CliIo {
  out: string
  err: string
}

export function recordingIo(stdin = ''): RecordingIo {
  const io: RecordingIo = {
    out: '',
    err: '',
    stdout: (text) => void (io.out += text),
    stderr: (text) => void (io.err += text),
    readStdin: async () => stdin,
  }
  return io
}
