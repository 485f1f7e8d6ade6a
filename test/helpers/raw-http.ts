import { connect } from 'node:net'

/** A response read off the wire: status, lower-cased headers and the body text. */
export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Sends an HTTP/1.1 request with exactly this request target and these header lines, which
 * fetch and http.request would normalise or refuse (dot segments, backslashes, absolute form).
 */
export async function rawRequest (origin: string, method: string, target: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(origin)
  const lines = [`${method} ${target} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close', ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => socket.write(`${lines.join('\r\n')}\r\n\r\n`))
    let received = ''
    socket.setEncoding('latin1')
    socket.on('data', (data: string) => { received += data })
    // Not half-closed after writing: the gateway takes a closed request side for a client that left.
    socket.on('end', () => { socket.end(); resolve(received) })
    socket.on('error', reject)
  })
  const [head = '', ...rest] = text.split('\r\n\r\n')
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  return {
    status: Number(statusLine.split(' ')[1]),
    headers: Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()])),
    body: rest.join('\r\n\r\n'),
  }
}
