// The page's side of WebRTC (RTCPeerConnection exists only in windows): creates connections
// when the worker asks, runs SDP and ICE, passes signals both ways, and hands each datachannel
// to the worker — transferred where the browser allows it (Chromium does), else bridged over a
// MessagePort. The page never reads or writes datagrams on a transferred channel.
import type { WebRtcSignal } from '../disco/messages.ts'
import type { ChannelLinkOptions } from './channel-link.ts'
import { DATACHANNEL_INIT, DATACHANNEL_LABEL, type PageToWorkerMessage, type WorkerToPageMessage } from './control-protocol.ts'
import { bridgeDataChannel } from './port-channel.ts'

export interface WebRtcPageAgentOptions {
  /** STUN/TURN servers; none are needed between pages on one machine or one LAN. */
  iceServers?: RTCIceServer[]
  /** Always bridge over a MessagePort, even where channels can be transferred (tests, benchmarks). */
  forceBridge?: boolean
  /** Backpressure settings for bridged channels (transferred ones are configured in the worker). */
  link?: ChannelLinkOptions
  /** Reports failures no caller waits for (a bad SDP, a closed port). */
  onError?: (error: Error) => void
}

interface PageSession {
  session: number
  pc: RTCPeerConnection
  /** Candidates that arrived before the remote description. */
  pendingCandidates: RTCIceCandidateInit[]
  channelHandedOver: boolean
}

export class WebRtcPageAgent {
  private readonly sessions = new Map<string, PageSession>()
  private closed = false
  /** How the last channel reached the worker, for tests and diagnostics. */
  lastHandover: 'transferred' | 'bridged' | undefined

  constructor(
    private readonly port: MessagePort,
    private readonly options: WebRtcPageAgentOptions = {},
  ) {
    port.onmessage = (event: MessageEvent) => this.onWorkerMessage(event.data as WorkerToPageMessage)
  }

  /** Closes every connection and stops listening to the worker. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const session of this.sessions.values()) session.pc.close()
    this.sessions.clear()
    this.port.onmessage = null
    this.port.close()
  }

  private onWorkerMessage(message: WorkerToPageMessage): void {
    if (this.closed || typeof message !== 'object' || message === null) return
    switch (message.type) {
      case 'connect':
        this.startSession(message.peer, message.session, true)
        return
      case 'signal':
        this.applySignal(message.peer, message.signal).catch((error: Error) => this.fail(message.peer, message.signal.session, error))
        return
      case 'close': {
        const session = this.sessions.get(message.peer)
        if (session?.session === message.session) this.endSession(message.peer)
        return
      }
    }
  }

  private startSession(peer: string, sessionId: number, offerer: boolean): PageSession {
    this.endSession(peer)
    const pc = new RTCPeerConnection({ iceServers: this.options.iceServers ?? [] })
    const session: PageSession = { session: sessionId, pc, pendingCandidates: [], channelHandedOver: false }
    this.sessions.set(peer, session)
    pc.onicecandidate = (event) => {
      // A null candidate only marks the end of gathering; the far side needs nothing for it.
      if (!event.candidate || this.sessions.get(peer) !== session) return
      const { candidate, sdpMid, sdpMLineIndex } = event.candidate
      this.send({ type: 'signal', peer, signal: { session: sessionId, kind: 'candidate', candidate, sdpMid, sdpMLineIndex } })
    }
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.sessions.get(peer) === session) this.fail(peer, sessionId, new Error('ICE/DTLS connection failed'))
    }
    if (offerer) {
      // Created and handed over in the same task: a datachannel is only transferable before then.
      this.handOver(peer, session, pc.createDataChannel(DATACHANNEL_LABEL, DATACHANNEL_INIT))
      void (async () => {
        await pc.setLocalDescription(await pc.createOffer())
        this.send({ type: 'signal', peer, signal: { session: sessionId, kind: 'offer', sdp: pc.localDescription!.sdp } })
      })().catch((error: Error) => this.fail(peer, sessionId, error))
    } else {
      pc.ondatachannel = (event) => {
        if (this.sessions.get(peer) === session && !session.channelHandedOver && event.channel.label === DATACHANNEL_LABEL) this.handOver(peer, session, event.channel)
        else event.channel.close()
      }
    }
    return session
  }

  private async applySignal(peer: string, signal: WebRtcSignal): Promise<void> {
    if (signal.kind === 'offer') {
      const session = this.startSession(peer, signal.session, false)
      await session.pc.setRemoteDescription({ type: 'offer', sdp: signal.sdp })
      await this.flushCandidates(session)
      await session.pc.setLocalDescription(await session.pc.createAnswer())
      if (this.sessions.get(peer) === session) this.send({ type: 'signal', peer, signal: { session: signal.session, kind: 'answer', sdp: session.pc.localDescription!.sdp } })
      return
    }
    const session = this.sessions.get(peer)
    if (!session || session.session !== signal.session) return
    if (signal.kind === 'answer') {
      await session.pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp })
      await this.flushCandidates(session)
    } else if (signal.kind === 'candidate') {
      const init: RTCIceCandidateInit = { candidate: signal.candidate, sdpMid: signal.sdpMid, sdpMLineIndex: signal.sdpMLineIndex }
      if (session.pc.remoteDescription) await session.pc.addIceCandidate(init)
      else session.pendingCandidates.push(init)
    }
  }

  private async flushCandidates(session: PageSession): Promise<void> {
    for (const candidate of session.pendingCandidates.splice(0)) await session.pc.addIceCandidate(candidate)
  }

  private handOver(peer: string, session: PageSession, channel: RTCDataChannel): void {
    session.channelHandedOver = true
    if (!this.options.forceBridge) {
      try {
        const message: PageToWorkerMessage = { type: 'channel', peer, session: session.session, channel }
        this.port.postMessage(message, [channel as unknown as Transferable])
        this.lastHandover = 'transferred'
        return
      } catch {
        // Not transferable in this browser: keep it here and bridge it.
      }
    }
    const { port1, port2 } = new MessageChannel()
    bridgeDataChannel(channel, port1, this.options.link)
    this.port.postMessage({ type: 'bridged', peer, session: session.session, port: port2 } satisfies PageToWorkerMessage, [port2])
    this.lastHandover = 'bridged'
  }

  private fail(peer: string, sessionId: number, error: Error): void {
    const session = this.sessions.get(peer)
    if (!session || session.session !== sessionId) return
    this.endSession(peer)
    this.send({ type: 'failed', peer, session: sessionId, reason: error.message })
    this.options.onError?.(error)
  }

  private endSession(peer: string): void {
    const session = this.sessions.get(peer)
    if (!session) return
    this.sessions.delete(peer)
    session.pc.close()
  }

  private send(message: PageToWorkerMessage): void {
    if (!this.closed) this.port.postMessage(message)
  }
}
