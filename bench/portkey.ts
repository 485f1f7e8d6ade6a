// The Portkey AI gateway baseline of npm run bench: @portkey-ai/gateway (a dev dependency, its
// install script skipped: see allowScripts in package.json; the script is patch-package, and the
// published package holds no patches) started from its build, in front of the same fake upstream
// through its Gemini provider ("google"). Portkey speaks the OpenAI chat API to its clients and
// calls `<custom host>/v1beta/models/<model>:generateContent?key=<the bearer token>` upstream.
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Call } from './load.js'

/** The target name of the Portkey gateway in bench/run.ts's tables. */
export const PORTKEY_TARGET = 'portkey, Gemini provider'

/** Portkey's Node server, or undefined when the dev dependency is not installed. */
export function portkeyEntry (root: string): string | undefined {
  const entry = join(root, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js')
  return existsSync(entry) ? entry : undefined
}

/**
 * Starts Portkey on `port` through `launch` (run.ts's start on the proxy core): headless (no
 * log UI) and in production mode, as its README runs it in a deployment.
 */
export function startPortkey (entry: string, port: number, launch: (args: string[], env: NodeJS.ProcessEnv) => ChildProcess): ChildProcess {
  return launch([entry, '--headless', `--port=${port}`], { NODE_ENV: 'production' })
}

/** The same question as the other targets' generateContent, as an OpenAI chat completion Portkey sends to Gemini. */
export function portkeyCall (origin: string, upstreamUrl: string, token: string, model: string, prompt: string): Call {
  return {
    origin,
    path: '/v1/chat/completions',
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-portkey-provider': 'google',
      'x-portkey-custom-host': upstreamUrl,
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }] }),
  }
}
