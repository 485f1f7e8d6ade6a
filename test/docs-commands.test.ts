// Every shell command the README and docs/ tell a reader to type is run, here or by .ci/run.
// The marker convention (an HTML comment on the line before a fence) is documented in
// docs/testing.md.
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { freePort } from './fixtures/ports.js'

const ROOT = resolve(import.meta.dirname, '..')
const SHELL_FENCE = /^```(sh|bash|shell|console)\s*$/
const MARKER = /^<!--\s*run(?::\s*(ci|demo|no\b[^>]*))?\s*-->$/
const BLOCK_TIMEOUT = 120_000
const DEMO_START_TIMEOUT = 60_000
/** The long-running command of the quick start; the test starts it instead of .ci/run. */
const DEMO_COMMAND = 'npm run demo'

/** A fenced shell block and how it is meant to be run. */
interface ShellBlock {
  where: string
  marker: 'run' | 'ci' | 'demo' | 'no' | undefined
  script: string
}

function documents (): string[] {
  const docs = readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => join('docs', name))
  return ['README.md', ...docs.sort()]
}

function markerOf (line: string | undefined): ShellBlock['marker'] {
  const match = MARKER.exec(line?.trim() ?? '')
  if (match === null) return undefined
  if (match[1] === undefined) return 'run'
  return match[1].startsWith('no') ? 'no' : match[1] as 'ci' | 'demo'
}

/** The shell blocks of one Markdown file, each with the marker on the line before its fence. */
export function shellBlocks (path: string, text: string): ShellBlock[] {
  const lines = text.split('\n')
  const blocks: ShellBlock[] = []
  for (let index = 0; index < lines.length; index++) {
    if (!SHELL_FENCE.test(lines[index]!)) continue
    const end = lines.findIndex((line, at) => at > index && line.startsWith('```'))
    blocks.push({ where: `${path}:${index + 1}`, marker: markerOf(lines[index - 1]), script: lines.slice(index + 1, end).join('\n') })
    index = end
  }
  return blocks
}

/** The commands of a block: comments dropped, continuations joined, `&&` chains split. */
function commands (script: string): string[] {
  return script.replace(/\\\n\s*/g, '').split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .flatMap((line) => line.split('&&').map((part) => part.trim()))
}

/** The runner's environment minus tap's own loaders and coverage, which would leak into npm. */
function cleanEnvironment (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) =>
    !/^(TAP|_TAPJS|NODE_OPTIONS$|NODE_V8_COVERAGE$|TS_NODE)/.test(name)))
}

const blocks = documents().flatMap((path) => shellBlocks(path, readFileSync(join(ROOT, path), 'utf8')))

t.test('every shell block in the docs says whether and how it is run', async (t) => {
  t.ok(blocks.length > 0, 'the docs have shell blocks')
  for (const block of blocks) t.not(block.marker, undefined, `${block.where} has a <!-- run … --> marker (see docs/testing.md)`)
})

t.test('the commands marked ci are ones .ci/run runs', async (t) => {
  const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8')
  for (const block of blocks.filter((block) => block.marker === 'ci')) {
    for (const command of commands(block.script)) {
      if (command === DEMO_COMMAND) continue
      t.match(ci, new RegExp(`^\\s*${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|$)`, 'm'), `${block.where}: .ci/run runs \`${command}\``)
    }
  }
})

/** What a copy of the project leaves out: installed or generated, never documented. */
const NOT_COPIED = new Set(['node_modules', '.tap', '.git', 'dist', 'coverage', join('.ci', 'node')])

/**
 * A copy of the project (node_modules linked) to run the blocks in. A block may run tap, and tap
 * clears `.tap/coverage` and `.tap/processinfo` when it starts: in the project itself that would
 * wipe the coverage of the very suite this test is part of.
 */
function projectCopy (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gemgate-docs-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  cpSync(ROOT, dir, { recursive: true, filter: (source) => !NOT_COPIED.has(relative(ROOT, source)) })
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

t.test('the blocks marked run exit 0', async (t) => {
  const run = promisify(execFile)
  const cwd = projectCopy(t)
  for (const block of blocks.filter((block) => block.marker === 'run')) {
    await t.resolves(run('bash', ['-euo', 'pipefail', '-c', block.script], {
      cwd, timeout: BLOCK_TIMEOUT, env: cleanEnvironment(), maxBuffer: 16 * 1024 * 1024,
    }), `${block.where} runs`)
  }
})

t.test('npm run demo, as the quick start types it, starts and prints where to go', async (t) => {
  const demoBlocks = blocks.filter((block) => block.marker === 'ci' && commands(block.script).includes(DEMO_COMMAND))
  t.ok(demoBlocks.length > 0, 'the quick start runs the demo')
  const port = await freePort()
  const child = spawn('bash', ['-c', `exec ${DEMO_COMMAND}`], {
    cwd: ROOT, env: { ...cleanEnvironment(), PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    process.kill(-child.pid!, 'SIGTERM')
    await Promise.race([exited, sleep(10_000)])
  })
  let output = ''
  child.stdout!.on('data', (data: Buffer) => { output += data.toString() })
  child.stderr!.on('data', (data: Buffer) => { output += data.toString() })
  const deadline = Date.now() + DEMO_START_TIMEOUT
  while (!output.includes('Gemgate demo is running.') && child.exitCode === null && Date.now() < deadline) await sleep(100)
  t.match(output, `Open         http://localhost:${port}`, 'it prints the URL to open', { output })
  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
  t.equal(health.status, 200, 'the gateway answers')
})
