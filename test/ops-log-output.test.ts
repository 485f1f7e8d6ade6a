// The batched log output (src/ops/log-output.ts) on real descriptors: a file, a FIFO whose reader
// is slow, stalled or gone, and a process that exits with lines still held.
import { execFile, spawnSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { LogOutput } from '../src/ops/log-output.js'

const ROOT = join(import.meta.dirname, '..')
const line = (index: number): string => `${JSON.stringify({ level: 30, index, msg: 'request', pad: 'é'.repeat(index % 300) })}\n`
const lines = (count: number): string => Array.from({ length: count }, (_, index) => line(index)).join('')

async function until (done: () => boolean, what: string): Promise<void> {
  for (let tries = 0; tries < 1000; tries++) {
    if (done()) return
    await sleep(10)
  }
  throw new Error(`gave up waiting: ${what}`)
}

const scratch = (): string => mkdtempSync(join(tmpdir(), 'gemgate-log-'))

/** A FIFO open at both ends without blocking: what does not fit in the pipe (64 KB) waits for the reader. */
function fifo (t: Test): { writer: number, read: () => string, closeReader: () => void } {
  const path = join(scratch(), 'out')
  if (spawnSync('mkfifo', [path]).status !== 0) throw new Error('mkfifo failed')
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
  const open = new Set([reader, writer])
  const close = (fd: number): void => { if (open.delete(fd)) closeSync(fd) }
  t.teardown(() => { close(reader); close(writer) })
  const buffer = Buffer.alloc(64 * 1024)
  let bytes = Buffer.alloc(0)
  /** Everything read so far. */
  const read = (): string => {
    for (;;) {
      let count: number
      try {
        count = readSync(reader, buffer, 0, buffer.length, null)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break
        throw error
      }
      if (count === 0) break
      bytes = Buffer.concat([bytes, buffer.subarray(0, count)])
    }
    return bytes.toString('utf8')
  }
  return { writer, read, closeReader: () => { close(reader) } }
}

t.test('lines reach a file whole and in order, in batches, and a short batch after the flush interval', async (t) => {
  const path = join(scratch(), 'log')
  const fd = openSync(path, 'w')
  t.teardown(() => { closeSync(fd) })
  const output = new LogOutput(fd, { batchChars: 4096, flushMs: 20 })
  const expected = lines(2000)
  for (let index = 0; index < 2000; index++) output.write(line(index))
  await until(() => readFileSync(path, 'utf8').length === expected.length, 'every line in the file')
  t.equal(readFileSync(path, 'utf8'), expected)
  output.write(line(2000))
  await until(() => readFileSync(path, 'utf8').endsWith(line(2000)), 'the last, short batch')
})

t.test('flushSync while a batch is being written: every line still arrives whole, none skipped', async (t) => {
  const path = join(scratch(), 'log')
  // O_APPEND: the asynchronous write and the synchronous one each land whole at the end.
  const fd = openSync(path, 'a')
  t.teardown(() => { closeSync(fd) })
  const output = new LogOutput(fd, { batchChars: 4096, flushMs: 5 })
  for (let index = 0; index < 100; index++) output.write(line(index))
  // A batch is in flight now; the exit-time flush writes it again from where it was known to be.
  output.flushSync()
  // The next batch starts before the first write's callback comes back.
  for (let index = 100; index < 200; index++) output.write(line(index))
  await until(() => readFileSync(path, 'utf8').endsWith(line(199)), 'the lines after the flush')
  await sleep(50)
  const indexes = readFileSync(path, 'utf8').trim().split('\n').map((text) => (JSON.parse(text) as { index: number }).index)
  t.same([...new Set(indexes)].sort((a, b) => a - b), Array.from({ length: 200 }, (_, index) => index), 'every line, each whole')
  t.same(indexes.filter((index) => index >= 100), Array.from({ length: 100 }, (_, index) => 100 + index), 'the later lines once each, in order')
})

t.test('a full pipe (EAGAIN) and partial writes: nothing lost, reordered or repeated while the reader is slow', async (t) => {
  const pipe = fifo(t)
  const output = new LogOutput(pipe.writer, { batchChars: 8192, flushMs: 5 })
  // 3,000 lines of up to 600 bytes: many times what the pipe holds.
  const expected = lines(3000)
  for (let index = 0; index < 3000; index++) {
    output.write(line(index))
    if (index % 500 === 0) await sleep(1)
  }
  let got = ''
  await until(() => (got = pipe.read()).length >= expected.length, 'every line through the pipe')
  t.equal(got, expected)
  t.equal(output.dropped, 0)
})

t.test('a stalled reader costs bounded memory: lines past the bound are dropped, counted, and said so once it reads again', async (t) => {
  const pipe = fifo(t)
  const output = new LogOutput(pipe.writer, { batchChars: 4096, flushMs: 5, maxHeldChars: 64 * 1024 })
  for (let index = 0; index < 2000; index++) output.write(line(index))
  t.ok(output.dropped > 0, `dropped ${output.dropped} lines past the bound`)
  let got = ''
  await until(() => (got = pipe.read()).length > 0 && output.dropped === 0, 'the held lines and the note')
  output.write(line(5000))
  await until(() => (got = pipe.read()).endsWith(line(5000)), 'a line after the stall')
  const parsed = got.trim().split('\n').map((text) => JSON.parse(text) as { index?: number, dropped?: number })
  const note = parsed.find((entry) => entry.dropped !== undefined)
  t.ok(note !== undefined && note.dropped! > 0, 'a line says how many were dropped')
  const indexes = parsed.flatMap((entry) => entry.index === undefined ? [] : [entry.index])
  t.same(indexes, [...indexes].sort((a, b) => a - b), 'the lines kept are in order')
})

t.test('a reader gone for good (EPIPE): logging stops, nothing throws', async (t) => {
  const pipe = fifo(t)
  const output = new LogOutput(pipe.writer, { batchChars: 1024, flushMs: 5 })
  pipe.closeReader()
  for (let index = 0; index < 200; index++) t.doesNotThrow(() => output.write(line(index)))
  await sleep(50)
  t.doesNotThrow(() => { output.flushSync() })
})

t.test('lines still held when the process exits are written (flushSync on exit)', async (t) => {
  const script = [
    "import { LogOutput } from './src/ops/log-output.ts'",
    'const output = new LogOutput(1, { flushMs: 60_000 })',
    "process.on('exit', () => { output.flushSync() })",
    "for (let index = 0; index < 100; index++) output.write(JSON.stringify({ index }) + '\\n')",
    'process.exit(0)',
  ].join('\n')
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', './scripts/register-ts.mjs', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 30_000 })
  t.same(stdout.trim().split('\n').map((text) => (JSON.parse(text) as { index: number }).index), Array.from({ length: 100 }, (_, index) => index))
})
