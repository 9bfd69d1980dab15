// The `webrtc` kind for the worker's `add-underlay`: `{ kind: 'webrtc', port, options: { nodeKey } }`
// where `port` is the worker's end of the control channel whose other end the page gives to a
// WebRtcPageAgent, and `nodeKey` is our node public key (decides who offers).
import { parseKey } from '../../crypto/index.ts'
import { registerUnderlayKind } from '../../worker/host.ts'
import { WebRtcUnderlay, WebRtcUnderlayError, type WebRtcUnderlayOptions } from './webrtc-underlay.ts'

export interface WebRtcUnderlaySpecOptions {
  /** Our node public key: raw, base64 or `nodekey:` hex. */
  nodeKey: Uint8Array | string
  link?: WebRtcUnderlayOptions['link']
}

/** Registers the kind; `onCreate` sees each underlay made (e.g. to hand it to DirectPaths). */
export function registerWebRtcUnderlayKind(onCreate?: (underlay: WebRtcUnderlay) => void): void {
  registerUnderlayKind('webrtc', (spec, reportError) => {
    const port = spec.port
    if (typeof port !== 'object' || port === null || typeof port.postMessage !== 'function') {
      throw new WebRtcUnderlayError('a "webrtc" underlay needs the control MessagePort in `port`')
    }
    const options = spec.options as WebRtcUnderlaySpecOptions | undefined
    const nodeKey = options?.nodeKey
    if (nodeKey === undefined) throw new WebRtcUnderlayError('a "webrtc" underlay needs `options.nodeKey` (our node public key)')
    const ourKey = typeof nodeKey === 'string' ? parseKey(nodeKey) : nodeKey
    const underlay = new WebRtcUnderlay(port, { ourKey, ...(options?.link ? { link: options.link } : {}) }, reportError)
    onCreate?.(underlay)
    return underlay
  })
}
