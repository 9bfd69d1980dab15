// The Burrow demo: join, list peers, browse a peer's web app through the Service Worker proxy,
// watch per-peer throughput and path changes, chat over TCP, serve HTTP from this tab, send files.
import { Burrow, type BurrowPathEvent, type BurrowPeer, type BurrowProxy, type TCPSocket } from '../src/index.ts'

const CHAT_PORT = 7000
const FILE_PORT = 7001
const HTTP_PORT = 80

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

interface DemoConfig {
  controlURL: string
  authKey?: string
  /** Where `npm start` serves the proxy origin (see proxyOrigin). */
  proxyPort?: number
}

/** `npm start` serves the relay URL and its dev auth key; `?control=…&authKey=…` overrides them. */
async function loadConfig(): Promise<DemoConfig> {
  const query = new URLSearchParams(location.search)
  let config: DemoConfig | undefined
  try {
    const response = await fetch('/burrow-demo-config.json')
    if (response.ok) config = (await response.json()) as DemoConfig
  } catch {
    // Served without `npm start`: the query must say where the relay is.
  }
  const controlURL = query.get('control') ?? config?.controlURL
  if (!controlURL) throw new Error('no relay configured: run `npm start`, or open this page with ?control=http://relay:port&authKey=…')
  const authKey = query.get('authKey') ?? config?.authKey
  return { controlURL, ...(authKey ? { authKey } : {}), ...(config?.proxyPort ? { proxyPort: config.proxyPort } : {}) }
}

/** One identity per tab (sessionStorage is per tab and survives reloads), so two tabs are two nodes. */
function tabKeyName(): string {
  let name = sessionStorage.getItem('burrow-key-name')
  if (!name) {
    name = `tab-${Math.random().toString(36).slice(2, 10)}`
    sessionStorage.setItem('burrow-key-name', name)
  }
  return name
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

/** The path column: relay/direct, plus the ICE candidate type where the node reports one. */
function pathText(peer: BurrowPeer): string {
  const candidate = (peer as BurrowPeer & { candidateType?: string | null }).candidateType
  return candidate ? `${peer.path} (${candidate})` : peer.path
}

function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`
}

/**
 * Proxied apps get their own origin — this host on the proxy port `npm start` serves — so they
 * cannot reach this page's DOM, storage (the node's key) or node. Same host, so same site: a
 * cross-site iframe could not register the proxy's Service Worker where third-party storage is
 * blocked. `?proxyOrigin=` overrides; without either the proxy shares this page's origin.
 */
function proxyOrigin(config: DemoConfig): string | undefined {
  const query = new URLSearchParams(location.search).get('proxyOrigin')
  if (query) return query
  return config.proxyPort ? `${location.protocol}//${location.hostname}:${config.proxyPort}` : undefined
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = '', className = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  node.textContent = text
  if (className) node.className = className
  return node
}

async function readAll(socket: TCPSocket): Promise<{ bytes: Uint8Array; remoteAddress: string }> {
  const { readable, remoteAddress } = await socket.opened
  const chunks: Uint8Array[] = []
  for (const reader = readable.getReader(); ;) {
    const { value, done } = await reader.read()
    if (done) break
    chunks.push(value)
  }
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.length
  }
  return { bytes, remoteAddress }
}

async function acceptEach(node: Burrow, port: number, handle: (socket: TCPSocket) => Promise<void>): Promise<void> {
  const { readable } = await node.listen(port).opened
  const reader = readable.getReader()
  for (;;) {
    const { value: socket, done } = await reader.read()
    if (done) return
    handle(socket).catch((error: unknown) => showError(error))
  }
}

function showError(error: unknown): void {
  const line = el('li', `⚠ ${(error as Error)?.message ?? String(error)}`, 'error')
  $('chat').append(line)
}

async function main(): Promise<void> {
  const config = await loadConfig()
  const node = await Burrow.start({
    controlURL: config.controlURL,
    ...(config.authKey ? { authKey: config.authKey } : {}),
    hostname: `tab-${Math.floor(Math.random() * 900 + 100)}`,
    keyName: tabKeyName(),
  })
  const self = $('self')
  const showSelf = (): void => {
    self.textContent = `${node.hostname} · ${node.addresses.join(' · ')} · ${node.state}`
  }
  showSelf()
  node.addEventListener('state', showSelf)
  node.addEventListener('error', (event) => showError((event as Event & { error: Error }).error))
  const nameOf = (address: string): string => node.peers().find((p) => p.addresses.includes(address))?.hostname ?? address

  // ---- peers ----
  const renderPeers = (peers: BurrowPeer[]): void => {
    const body = $('peers').querySelector('tbody')!
    body.replaceChildren(
      ...peers.map((peer) => {
        const row = el('tr')
        const fetchButton = el('button', 'fetch')
        fetchButton.disabled = !peer.online
        fetchButton.onclick = () => void fetchFrom(peer)
        const cell = el('td')
        cell.append(fetchButton)
        const cells = [
          el('td', peer.hostname, 'host'),
          el('td', peer.addresses.join('\n'), 'addr'),
          el('td', peer.online ? 'online' : 'offline', peer.online ? 'online' : 'offline'),
          el('td', pathText(peer), `path-${peer.path}`),
          el('td', peer.rttMs === null ? '–' : `${peer.rttMs.toFixed(1)} ms`),
          el('td', `${formatBytes(peer.rxBytes)} / ${formatBytes(peer.txBytes)}`),
          cell,
        ]
        // Labels for the phone layout, where each row is a card and the header row is hidden.
        const labels = ['', 'addresses', 'state', 'path', 'RTT', 'rx / tx', '']
        cells.forEach((td, i) => labels[i] && (td.dataset.label = labels[i]))
        row.append(...cells)
        return row
      }),
    )
    const select = $<HTMLSelectElement>('file-peer')
    const chosen = select.value
    select.replaceChildren(...peers.filter((p) => p.online).map((p) => Object.assign(el('option', p.hostname), { value: p.addresses[0] })))
    if (chosen) select.value = chosen
  }
  node.addEventListener('peers', () => renderPeers(node.peers()))
  renderPeers(node.peers())

  // ---- network: throughput per peer over the last minute, path, RTT, path changes ----
  interface Sample {
    at: number
    rx: number
    tx: number
  }
  const history = new Map<string, Sample[]>()
  const WINDOW_MS = 60_000
  const timeline = $('timeline')
  const logPath = (text: string, className = ''): void => {
    if (timeline.querySelector('.hint')) timeline.replaceChildren()
    const line = el('li', '', className)
    line.append(el('time', new Date().toLocaleTimeString()), document.createTextNode(text))
    timeline.prepend(line)
  }
  const wasOnline = new Map<string, boolean>()
  const renderCharts = (peers: BurrowPeer[]): void => {
    const now = performance.now()
    const charts = $('charts')
    const shown = peers.filter((p) => p.online || (history.get(p.nodeKey)?.length ?? 0) > 0)
    charts.replaceChildren(
      ...shown.map((peer) => {
        let samples = history.get(peer.nodeKey)
        if (!samples) history.set(peer.nodeKey, (samples = []))
        samples.push({ at: now, rx: peer.rxBytes, tx: peer.txBytes })
        while (samples.length > 2 && samples[0]!.at < now - WINDOW_MS) samples.shift()
        const rates = samples.slice(1).map((s, i) => {
          const prev = samples![i]!
          const seconds = Math.max((s.at - prev.at) / 1000, 0.001)
          return { at: s.at, rx: Math.max(0, s.rx - prev.rx) / seconds, tx: Math.max(0, s.tx - prev.tx) / seconds }
        })
        const peak = Math.max(1024, ...rates.map((r) => Math.max(r.rx, r.tx)))
        const line = (key: 'rx' | 'tx'): string =>
          rates.map((r) => `${(((r.at - (now - WINDOW_MS)) / WINDOW_MS) * 300).toFixed(1)},${(58 - (r[key] / peak) * 54).toFixed(1)}`).join(' ')
        const box = el('div', '', 'chart')
        box.dataset.peer = peer.hostname
        const head = el('header')
        const pathBadge = el('span', pathText(peer), `path-${peer.path}`)
        head.append(el('b', peer.hostname), pathBadge, el('span', peer.rttMs === null ? 'RTT –' : `RTT ${peer.rttMs.toFixed(1)} ms`))
        const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
        svg.setAttribute('viewBox', '0 0 300 60')
        svg.setAttribute('preserveAspectRatio', 'none')
        svg.setAttribute('role', 'img')
        svg.setAttribute('aria-label', `throughput of ${peer.hostname}`)
        svg.innerHTML = `<line x1="0" y1="58" x2="300" y2="58" stroke="#ddd"/><polyline fill="none" stroke="#2a6fdb" stroke-width="1.5" vector-effect="non-scaling-stroke" points="${line('rx')}"/><polyline fill="none" stroke="#d9822b" stroke-width="1.5" vector-effect="non-scaling-stroke" points="${line('tx')}"/>`
        const last = rates.at(-1) ?? { rx: 0, tx: 0 }
        const legend = el('div', '', 'legend')
        legend.append(
          el('span', `▼ rx ${formatRate(last.rx)}`, 'rx'),
          document.createTextNode(' · '),
          el('span', `▲ tx ${formatRate(last.tx)}`, 'tx'),
          document.createTextNode(` · peak ${formatRate(peak)}`),
        )
        const axis = el('div', '', 'axis')
        axis.append(el('span', '60 s ago'), el('span', 'now'))
        box.append(head, svg, axis, legend)
        return box
      }),
    )
    if (shown.length === 0) charts.replaceChildren(el('p', 'No peers online yet.', 'hint'))
    for (const peer of peers) {
      const before = wasOnline.get(peer.nodeKey)
      if (before !== undefined && before !== peer.online) logPath(`${peer.hostname} went ${peer.online ? 'online' : 'offline'}`, peer.online ? 'online' : 'offline')
      wasOnline.set(peer.nodeKey, peer.online)
    }
  }
  node.addEventListener('peers', () => renderCharts(node.peers()))
  renderCharts(node.peers())
  node.addEventListener('path', (event) => {
    const { hostname, path, rttMs } = event as BurrowPathEvent
    const peer = node.peers().find((p) => p.hostname === hostname)
    logPath(`${hostname} → ${peer ? pathText(peer) : path}${rttMs === null ? '' : ` (disco RTT ${rttMs.toFixed(1)} ms)`}`, `path-${path}`)
  })

  // ---- browse: a peer's web app in a sandboxed iframe, through the proxy ----
  // allow-same-origin is what lets the proxy's Service Worker control the frame; the frame's
  // origin is the proxy origin, not this page's, so it still cannot reach this page or its node.
  // No allow-top-navigation or allow-popups: the app stays in its frame.
  const browseStatus = $('browse-status')
  const browseForm = $<HTMLFormElement>('browse-form')
  const frame = $<HTMLIFrameElement>('browse-frame')
  let proxy: BurrowProxy | undefined
  const renderBrowsePeers = (): void => {
    const select = $<HTMLSelectElement>('browse-peer')
    const chosen = select.value
    const online = node.peers().filter((p) => p.online)
    select.replaceChildren(...online.map((p) => Object.assign(el('option', p.hostname), { value: p.hostname })))
    if (online.some((p) => p.hostname === chosen)) select.value = chosen
  }
  node.addEventListener('peers', renderBrowsePeers)
  renderBrowsePeers()
  const origin = proxyOrigin(config)
  const proxyReady = node.proxy(origin ? { origin } : {}).then(
    (started) => {
      proxy = started
      browseStatus.textContent = `Proxy ready on ${started.origin}${started.prefix}<peer>/<port>/ — pick a peer and a port.`
      browseStatus.className = 'hint'
      return started
    },
    (error: unknown) => {
      browseStatus.textContent = `⚠ the proxy did not start: ${(error as Error).message}`
      browseStatus.className = 'error'
      return undefined
    },
  )
  browseForm.onsubmit = async (event) => {
    event.preventDefault()
    const started = proxy ?? (await proxyReady)
    const peer = $<HTMLSelectElement>('browse-peer').value
    const port = Number($<HTMLInputElement>('browse-port').value)
    let path = $<HTMLInputElement>('browse-path').value.trim() || '/'
    if (!path.startsWith('/')) path = `/${path}`
    if (!started) return
    if (!peer) {
      browseStatus.textContent = '⚠ no peer is online to browse'
      browseStatus.className = 'error'
      return
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      browseStatus.textContent = `⚠ ${JSON.stringify($<HTMLInputElement>('browse-port').value)} is not a port (1–65535)`
      browseStatus.className = 'error'
      return
    }
    const url = started.url(peer, port, path)
    frame.src = url
    browseStatus.replaceChildren(document.createTextNode(`http://${peer}:${port}${path} → `), Object.assign(el('a', url), { href: url, target: '_blank', rel: 'noopener' }))
    browseStatus.className = 'hint'
  }

  // ---- chat ----
  const say = (who: string, text: string): void => {
    const line = el('li')
    line.append(el('b', `${who}: `), document.createTextNode(text))
    $('chat').append(line)
    line.scrollIntoView({ block: 'nearest' })
  }
  void acceptEach(node, CHAT_PORT, async (socket) => {
    const { bytes, remoteAddress } = await readAll(socket)
    say(nameOf(remoteAddress), new TextDecoder().decode(bytes))
  })
  $('chat-form').onsubmit = (event) => {
    event.preventDefault()
    const input = $<HTMLInputElement>('chat-input')
    const text = input.value.trim()
    if (!text) return
    input.value = ''
    say(`${node.hostname} (me)`, text)
    for (const peer of node.peers().filter((p) => p.online)) {
      void (async () => {
        const socket = node.connect(peer.addresses[0], CHAT_PORT)
        const { writable } = await socket.opened
        const writer = writable.getWriter()
        await writer.write(new TextEncoder().encode(text))
        await writer.close()
      })().catch((error: unknown) => showError(new Error(`chat to ${peer.hostname}: ${(error as Error).message}`)))
    }
  }

  // ---- serve / fetch ----
  let server: ReturnType<Burrow['serve']> | undefined
  $('serve-url').textContent = `http://${node.addresses[0]}/`
  $<HTMLInputElement>('serve-toggle').onchange = async (event) => {
    if ((event.target as HTMLInputElement).checked) {
      server = node.serve(HTTP_PORT, (request) => {
        const text = $<HTMLTextAreaElement>('page-text').value
        return new Response(`${text}\n\n(served by ${node.hostname} for ${request.method} ${new URL(request.url).pathname} at ${new Date().toLocaleTimeString()})`, {
          headers: { 'content-type': 'text/plain; charset=utf-8' },
        })
      })
    } else {
      await server?.close()
      server = undefined
    }
  }
  const fetchFrom = async (peer: BurrowPeer): Promise<void> => {
    const out = $('fetched')
    out.textContent = `GET http://${peer.addresses[0]}/ …`
    const started = performance.now()
    try {
      const response = await node.fetch(`http://${peer.addresses[0]}/`)
      const text = await response.text()
      out.textContent = `${response.status} ${response.statusText} in ${(performance.now() - started).toFixed(0)} ms\n\n${text}`
    } catch (error) {
      out.textContent = `${peer.hostname}: ${(error as Error).message} (is “serve” ticked in that tab?)`
    }
  }

  // ---- file transfer ----
  const transferView = (title: string): { update(done: number, total: number): void; finish(extra?: HTMLElement): void; fail(error: unknown): void } => {
    const box = el('div', '', 'transfer')
    const label = el('div', title)
    const bar = el('progress')
    const speed = el('div')
    box.append(label, bar, speed)
    $('transfers').prepend(box)
    const started = performance.now()
    return {
      update(done, total) {
        bar.max = total
        bar.value = done
        const seconds = (performance.now() - started) / 1000
        speed.textContent = `${formatBytes(done)} of ${formatBytes(total)} · ${(done / 1024 / 1024 / Math.max(seconds, 0.001)).toFixed(2)} MiB/s`
      },
      finish(extra) {
        label.textContent = `${title} ✓`
        if (extra) box.append(extra)
      },
      fail(error) {
        label.textContent = `${title} ✗ ${(error as Error).message}`
        label.className = 'error'
      },
    }
  }
  void acceptEach(node, FILE_PORT, async (socket) => {
    const { readable, remoteAddress } = await socket.opened
    const reader = readable.getReader()
    let buffered = new Uint8Array(0)
    let header: { name: string; size: number } | undefined
    const chunks: Uint8Array[] = []
    let received = 0
    let view: ReturnType<typeof transferView> | undefined
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      if (!header) {
        const joined = new Uint8Array(buffered.length + value.length)
        joined.set(buffered)
        joined.set(value, buffered.length)
        const newline = joined.indexOf(10)
        if (newline < 0) {
          buffered = joined
          continue
        }
        header = JSON.parse(new TextDecoder().decode(joined.subarray(0, newline))) as { name: string; size: number }
        view = transferView(`⬇ ${header.name} from ${nameOf(remoteAddress)}`)
        const rest = joined.subarray(newline + 1)
        chunks.push(rest)
        received += rest.length
      } else {
        chunks.push(value)
        received += value.length
      }
      view!.update(received, header.size)
    }
    if (!header || !view) return
    if (received !== header.size) return view.fail(new Error(`got ${received} of ${header.size} bytes`))
    const link = el('a', `save ${header.name}`)
    link.href = URL.createObjectURL(new Blob(chunks as BlobPart[]))
    link.download = header.name
    view.finish(link)
  })
  $('file-form').onsubmit = (event) => {
    event.preventDefault()
    const file = $<HTMLInputElement>('file-input').files?.[0]
    const address = $<HTMLSelectElement>('file-peer').value
    if (!file || !address) return
    const view = transferView(`⬆ ${file.name} to ${nameOf(address)}`)
    void (async () => {
      const socket = node.connect(address, FILE_PORT)
      const { writable } = await socket.opened
      const writer = writable.getWriter()
      await writer.write(new TextEncoder().encode(`${JSON.stringify({ name: file.name, size: file.size })}\n`))
      let sent = 0
      const reader = file.stream().getReader()
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        await writer.write(value)
        sent += value.length
        view.update(sent, file.size)
      }
      await writer.close()
      view.finish()
    })().catch((error: unknown) => view.fail(error))
  }

  Object.assign(window, { burrowNode: node, burrowProxy: proxyReady })
}

main().catch((error: unknown) => {
  const self = $('self')
  self.textContent = `could not join: ${(error as Error).message}`
  self.className = 'error'
})
