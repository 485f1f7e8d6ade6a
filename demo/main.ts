// `npm run demo`: the whole product on this machine, and what to do with it, on the terminal.
import { ConfigError } from '../src/config/load.js'
import { loggerOptions } from '../src/ops/logger.js'
import { startDemo, type Demo } from './start.js'

/** sysexits.h EX_CONFIG, as the gateway itself exits on a bad setting. */
const EX_CONFIG = 78
const PROMPT = 'Hello through Gemgate'

// What survives a restart (docs/demo.md): on Redis, the gateway's state does; the embedded
// provider starts afresh, so sign-ins from an earlier offline run end at their first use.
function storeLine (demo: Demo, redis: boolean): string {
  if (!redis) return 'in memory, gone when the demo stops (set REDIS_URL to use Redis)'
  return demo.user === null ? 'Redis at REDIS_URL' : 'Redis at REDIS_URL (the embedded provider starts afresh: sign in again after a restart)'
}

function banner (demo: Demo, redis: boolean): string {
  const streamUrl = `${demo.url}/v1beta/models/${demo.model}:streamGenerateContent?alt=sse`
  const body = JSON.stringify({ contents: [{ parts: [{ text: PROMPT }] }] })
  const who = demo.user === null
    ? ['  Sign in      with your Google account (real Google sign-in and Gemini)']
    : ['  Sign in as   ' + demo.user.username, '  Password     ' + demo.user.password,
        '  (offline: an embedded sign-in page and a stand-in Gemini that echoes what you send)']
  return [
    '',
    'Gemgate demo is running.',
    '',
    '  Open         ' + demo.url,
    ...who,
    '',
    `Chat on that page, then open ${demo.url}/auth/status, create a key and use it:`,
    '',
    '  export GEMGATE_KEY=gk_...        # the key the status page showed you',
    '',
    `  curl -N '${streamUrl}' \\`,
    '    -H "x-goog-api-key: $GEMGATE_KEY" -H \'content-type: application/json\' \\',
    `    -d '${body}'`,
    '',
    `  GEMGATE_URL=${demo.url} node demo/genai-stream.mjs '${PROMPT}'     # @google/genai`,
    '',
    `Store: ${storeLine(demo, redis)}. Ctrl-C stops everything.`,
    '',
  ].join('\n')
}

async function main (): Promise<void> {
  let demo: Demo
  try {
    demo = await startDemo({ env: process.env, logger: (config) => loggerOptions(config, process.stdout.isTTY === true) })
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`demo: ${error.message}\n`)
      process.exitCode = EX_CONFIG
      return
    }
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`demo: ${(error as Error).message}. Pick another port: PORT=8081 npm run demo\n`)
      process.exitCode = 1
      return
    }
    throw error
  }
  process.stdout.write(banner(demo, process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== ''))
  const stop = (): void => {
    process.stdout.write('\nStopping the demo…\n')
    demo.stop().then(() => process.exit(0), (error: unknown) => {
      process.stderr.write(`demo: ${String(error)}\n`)
      process.exit(1)
    })
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

await main()
