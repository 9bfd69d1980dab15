// TLS for `burrow relay --tls-cert FILE --tls-key FILE`: the relay serves https:// and wss:// itself
// (a page served over https may open only wss://), and reloads the files on SIGHUP so a renewed
// certificate (ACME, an internal CA) takes effect without dropping a single connection.
import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContextOptions } from 'node:tls'

export interface TlsFiles {
  certFile: string
  keyFile: string
}

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError'
}

function readPem(path: string, what: string, marker: RegExp): Buffer {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (error) {
    throw new TlsConfigError(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`)
  }
  if (!marker.test(bytes.toString('latin1'))) throw new TlsConfigError(`${path} is not a PEM ${what} (no "-----BEGIN …" block of that kind)`)
  return bytes
}

/**
 * Reads and checks a certificate chain and its private key: both must be PEM and the key must
 * match the certificate (OpenSSL checks that when the context is built). Throws TlsConfigError
 * naming the file and the problem.
 */
export function loadTlsFiles(files: TlsFiles): SecureContextOptions {
  const cert = readPem(files.certFile, 'certificate', /-----BEGIN CERTIFICATE-----/)
  const key = readPem(files.keyFile, 'private key', /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/)
  try {
    createSecureContext({ cert, key })
  } catch (error) {
    throw new TlsConfigError(`${files.certFile} and ${files.keyFile} do not form a usable TLS identity: ${(error as Error).message}`)
  }
  return { cert, key }
}
