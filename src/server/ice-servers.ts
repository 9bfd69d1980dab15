// The ICE servers the coordination service hands each node in its welcome: the relay's own STUN
// server (what Tailscale's derper does on 3478) and any TURN servers the operator configured,
// with time-limited credentials when they share a secret with this relay.
import { hmacSha1, toBase64 } from '../crypto/index.ts'
import type { IceServer } from '../control/protocol.ts'

export interface TurnConfig {
  /** turn:/turns: URLs, e.g. `turn:turn.example:3478?transport=udp`. */
  urls: string[]
  /** The secret shared with the TURN server (coturn `static-auth-secret`); without one the URLs go out bare. */
  secret?: string
  /** How long handed-out credentials stay valid (default 12 h). */
  ttlSeconds?: number
}

export interface IceConfig {
  /** The relay's STUN port; undefined when STUN is off. */
  stunPort?: number
  /** Host name to put in the STUN URL; default: the host the node used to reach the relay. */
  stunHost?: string
  turn?: TurnConfig
}

export const DEFAULT_TURN_TTL_SECONDS = 12 * 3600

/**
 * TURN REST API credentials (draft-uberti-behave-turn-rest-00 §2.2, what coturn's
 * `use-auth-secret` checks): the username is the expiry as a UNIX timestamp, optionally followed by
 * `:` and a user id; the password is base64(HMAC-SHA1(secret, username)). The TURN server accepts
 * it until the timestamp passes, with no state shared beyond the secret.
 */
export function turnRestCredential(secret: string, expiresAtSeconds: number, user?: string): { username: string; credential: string } {
  const username = user === undefined || user === '' ? String(expiresAtSeconds) : `${expiresAtSeconds}:${user}`
  const encoder = new TextEncoder()
  return { username, credential: toBase64(hmacSha1(encoder.encode(secret), encoder.encode(username))) }
}

/** The host part of an HTTP Host header (`relay.example:8080` → `relay.example`, `[::1]:80` → `[::1]`). */
export function hostOfHostHeader(header: string | undefined): string | undefined {
  if (!header) return undefined
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/]+)(?::\d+)?$/.exec(header.trim())
  return match?.[1]
}

/**
 * The welcome's iceServers for one node. `host` is where the node reached the relay (the Host of
 * its /control request): the STUN server listens on the same address, so the same name reaches it.
 * `user` names the node in TURN usernames (no colon: coturn splits the username at the first one).
 */
export function iceServersFor(config: IceConfig, host: string | undefined, nowMs: number, user: string): IceServer[] {
  const servers: IceServer[] = []
  const stunHost = config.stunHost ?? host
  if (config.stunPort !== undefined && config.stunPort > 0 && stunHost !== undefined) {
    servers.push({ urls: `stun:${stunHost}:${config.stunPort}` })
  }
  const turn = config.turn
  if (turn && turn.urls.length > 0) {
    if (turn.secret !== undefined && turn.secret !== '') {
      const expires = Math.floor(nowMs / 1000) + (turn.ttlSeconds ?? DEFAULT_TURN_TTL_SECONDS)
      servers.push({ urls: turn.urls.length === 1 ? turn.urls[0]! : [...turn.urls], ...turnRestCredential(turn.secret, expires, user.replaceAll(':', '')) })
    } else {
      servers.push({ urls: turn.urls.length === 1 ? turn.urls[0]! : [...turn.urls] })
    }
  }
  return servers
}
