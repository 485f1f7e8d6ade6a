import { execFile } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Test } from 'tap'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Runs `npm run build` into a directory of this test file's own (inside dist/, so the
 * project's package.json and node_modules still apply) and returns the built main.js.
 * Test files run in parallel; building each into the shared dist/ would let one rewrite
 * files while another starts them. Removed at teardown.
 */
export async function buildGateway (t: Test, name: string): Promise<string> {
  const outDir = join(ROOT, 'dist', `.test-${name}-${process.pid}`)
  t.teardown(() => rmSync(outDir, { recursive: true, force: true }))
  try {
    await promisify(execFile)('npm', ['run', 'build', '--', '--outDir', outDir], { cwd: ROOT })
  } catch (error) {
    // tsc still emits on type errors; those belong to the typecheck, not to these tests.
    const { stdout = '' } = error as { stdout?: string }
    t.comment(`npm run build reported errors:\n${stdout}`)
  }
  const main = join(outDir, 'main.js')
  if (!existsSync(main)) throw new Error(`npm run build did not produce ${main}`)
  return main
}
