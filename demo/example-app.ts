// The example internal app: a chat page whose browser code calls Gemini through the gateway.
// Node built-ins only and erasable TypeScript only, so the compose image runs this file with
// plain `node` (Node 24 strips the types) and needs no npm install.
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'

/** The model the chat page asks for unless told otherwise: DEFAULT_MODEL of src/config/models.ts (this file runs without src/; a test keeps them equal). */
export const DEFAULT_CHAT_MODEL = 'gemini-3.8-flash'

const STATIC_FILES: Record<string, string> = {
  '/chat.js': 'text/javascript; charset=utf-8',
  '/chat.css': 'text/css; charset=utf-8',
}
// The page's own scripts only; fetches go to its origin, which is the gateway (or nginx).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

/** Options for {@link startExampleApp}. */
export interface ExampleAppOptions {
  /** Default 0: a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** The Gemini model the page asks for. */
  model?: string
  /** A line shown above the chat, e.g. that the upstream is a fake. */
  notice?: string
}

/** A running example app. */
export interface ExampleApp {
  /** `http://HOST:PORT`, no trailing slash. */
  url: string
  close: () => Promise<void>
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"'`]/g, (character) => `&#${character.charCodeAt(0)};`)
}

function header (request: IncomingMessage, name: string): string {
  const value = request.headers[name]
  return (Array.isArray(value) ? value[0] : value) ?? ''
}

function chatPage (request: IncomingMessage, options: ExampleAppOptions): string {
  // The gateway (sidecar mode) or nginx (auth_request) sets these; the app trusts only its front.
  const email = header(request, 'x-forwarded-email')
  const name = header(request, 'x-forwarded-name') || email
  const model = options.model ?? DEFAULT_CHAT_MODEL
  const notice = options.notice === undefined ? '' : `<p class="notice">${escapeHtml(options.notice)}</p>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Example chat</title><link rel="stylesheet" href="/chat.css"><script src="/chat.js" defer></script></head>
<body><header><strong>Example chat</strong><span class="who">${escapeHtml(name)}</span>
<nav><a href="/auth/status">Keys &amp; usage</a><form method="post" action="/auth/logout" enctype="text/plain" id="sign-out"><button type="submit" class="link">Sign out</button></form></nav></header>
<main>${notice}
<p class="intro">An internal app behind Gemgate. Your browser calls <code>${escapeHtml(model)}</code> through the gateway with your session; the app never sees a token.</p>
<ol id="messages" aria-live="polite"></ol>
<form id="chat" data-model="${escapeHtml(model)}"><label for="prompt" class="visually-hidden">Message</label>
<textarea id="prompt" name="prompt" rows="2" required placeholder="Ask Gemini something"></textarea>
<button type="submit">Send</button></form></main></body></html>`
}

async function serveStatic (response: ServerResponse, path: string, type: string): Promise<void> {
  const body = await readFile(new URL(`./public${path}`, import.meta.url))
  response.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' }).end(body)
}

async function handle (request: IncomingMessage, response: ServerResponse, options: ExampleAppOptions): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://app').pathname
  const type = STATIC_FILES[path]
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD' }).end()
  } else if (type !== undefined) {
    await serveStatic(response, path, type)
  } else if (path === '/healthz') {
    response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
  } else if (path === '/') {
    response.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    }).end(chatPage(request, options))
  } else {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  }
}

/** Starts the example app; it serves the chat page at `/` and its script and styles. */
export async function startExampleApp (options: ExampleAppOptions = {}): Promise<ExampleApp> {
  const server: Server = createServer((request, response) => {
    handle(request, response, options).catch(() => {
      if (!response.headersSent) response.writeHead(500).end()
      else response.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve())
  })
  const { address, port } = server.address() as AddressInfo
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
    },
  }
}

// Run directly (the compose image): `node demo/example-app.ts`, settings from the environment.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const app = await startExampleApp({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '0.0.0.0',
    model: process.env.CHAT_MODEL ?? DEFAULT_CHAT_MODEL,
  })
  process.stdout.write(`example app listening on ${app.url}\n`)
  const stop = (): void => { void app.close().then(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
