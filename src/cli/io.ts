// What a command may touch of the outside world, so commands can be tested without a real terminal.
export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  readStdin: () => Promise<string>
}

export type Command = (args: string[], io: CliIo) => Promise<number>

/** Exit status for bad usage or a bad config file (as opposed to a failure at run time, which is 1). */
export const EXIT_USAGE = 2

export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  readStdin: async () => {
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  },
}
