import { GoogleGenAI, Modality, type LiveServerMessage, type Session } from '@google/genai'
import WebSocket from 'ws'

/** A Live model name the tests use (the fake serves any). */
export const LIVE_MODEL = 'gemini-3.8-flash-live'

/** An open SDK Live session with everything it received and how it closed. */
export interface SdkLiveSession {
  session: Session
  messages: LiveServerMessage[]
  closed: Promise<{ code: number, reason: string }>
  /** Resolves once `count` turns have completed. */
  turns: (count: number) => Promise<void>
}

/** `ai.live.connect` from @google/genai with this apiKey (a gateway key or an ephemeral token) against the gateway. */
export async function connectSdk (gatewayUrl: string, apiKey: string, options: { apiVersion?: string, model?: string } = {}): Promise<SdkLiveSession> {
  const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl: gatewayUrl, ...(options.apiVersion === undefined ? {} : { apiVersion: options.apiVersion }) } })
  const messages: LiveServerMessage[] = []
  const waiters: Array<() => void> = []
  let onClose!: (closed: { code: number, reason: string }) => void
  const closed = new Promise<{ code: number, reason: string }>((resolve) => { onClose = resolve })
  const session = await ai.live.connect({
    model: options.model ?? LIVE_MODEL,
    config: { responseModalities: [Modality.AUDIO] },
    callbacks: {
      onmessage: (message) => { messages.push(message); for (const wake of waiters.splice(0)) wake() },
      onclose: (event) => { onClose({ code: event.code, reason: event.reason }) },
    },
  })
  const completed = (): number => messages.filter((message) => message.serverContent?.turnComplete === true).length
  const turns = async (count: number): Promise<void> => {
    while (completed() < count) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  return { session, messages, closed, turns }
}

/** A raw WebSocket to the gateway: for credentials and paths the SDK does not send. */
export async function rawLive (url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket, frames: Array<{ data: string, binary: boolean }>, closed: Promise<{ code: number, reason: string }>, opened: Promise<number> }> {
  const socket = new WebSocket(url, { headers })
  const frames: Array<{ data: string, binary: boolean }> = []
  socket.on('message', (data: Buffer, binary) => { frames.push({ data: data.toString(), binary }) })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => { socket.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) }) })
  const opened = new Promise<number>((resolve) => {
    socket.once('open', () => { resolve(101) })
    socket.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); socket.terminate() })
    socket.on('error', () => { resolve(0) })
  })
  return { socket, frames, closed, opened }
}

/** The Live path of an API version and method, with an optional query. */
export function livePath (version = 'v1beta', method = 'BidiGenerateContent'): string {
  return `/ws/google.ai.generativelanguage.${version}.GenerativeService.${method}`
}
