import { formatKey, KeyFormatError, parseKey, publicKeyOf } from '../crypto/index.ts'
import { EXIT_USAGE, type Command } from './io.ts'

/** `burrow pubkey`: private key on stdin, public key on stdout, like `wg pubkey`. */
export const pubkey: Command = async (args, io) => {
  if (args.length > 0) {
    io.stderr('usage: burrow pubkey < private.key\n')
    return EXIT_USAGE
  }
  const text = await io.readStdin()
  let privateKey: Uint8Array
  try {
    privateKey = parseKey(text)
  } catch (error) {
    if (!(error instanceof KeyFormatError)) throw error
    io.stderr(`burrow pubkey: stdin is not a private key: ${error.message}\n`)
    return 1
  }
  io.stdout(formatKey(publicKeyOf(privateKey)) + '\n')
  return 0
}
