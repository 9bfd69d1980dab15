import { formatKey, generateKeyPair } from '../crypto/index.ts'
import { EXIT_USAGE, type Command } from './io.ts'

/** `burrow keygen`: a new base64 private key, like `wg genkey`. */
export const keygen: Command = async (args, io) => {
  if (args.length > 0) {
    io.stderr('usage: burrow keygen\n')
    return EXIT_USAGE
  }
  io.stdout(formatKey(generateKeyPair().privateKey) + '\n')
  return 0
}
