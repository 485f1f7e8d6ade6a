import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { CHECK_CONFIG_FLAG, ConfigError, loadConfig } from './config/load.js'
import type { Config } from './config/schema.js'
import { flushLogsSync, loggerOptions } from './ops/logger.js'

/** sysexits.h EX_CONFIG: the configuration is wrong, restarting will not help. */
const EX_CONFIG = 78
/** sysexits.h EX_UNAVAILABLE: the port is busy now; a later restart may find it free. */
const EX_UNAVAILABLE = 69

/** Why listening failed, as one line naming the settings, and the exit code; undefined for the unexpected. */
function listenProblem (error: unknown, config: Config): { line: string, exitCode: number } | undefined {
  const where = `PORT ${config.port} on HOST ${config.host}`
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE': return { line: `${where} is already in use (EADDRINUSE): stop what holds it or set PORT to a free port`, exitCode: EX_UNAVAILABLE }
    case 'EACCES': return { line: `${where} needs privileges this user lacks (EACCES): set PORT above 1023`, exitCode: EX_CONFIG }
    case 'EADDRNOTAVAIL': return { line: `HOST ${config.host} is not an address of this machine (EADDRNOTAVAIL): set HOST to one, or 0.0.0.0`, exitCode: EX_CONFIG }
    default: return undefined
  }
}

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() })
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`gemgate: ${error.message}\n`)
    process.exitCode = EX_CONFIG
    return
  }
  if (process.argv.includes(CHECK_CONFIG_FLAG)) {
    process.stdout.write('gemgate: the configuration is valid\n')
    return
  }

  // Log lines go out in batches: what is held when the process ends is written before it goes.
  process.on('exit', flushLogsSync)
  const app = await buildApp(config, { logger: loggerOptions(config, process.stdout.isTTY === true) })
  const grace = closeWithGrace({ delay: config.shutdownDrainSeconds * 1000, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: draining in-flight requests')
    await app.close()
  })
  try {
    await app.listen({ port: config.port, host: config.host })
    if (app.opsServer !== null) await app.opsServer.listen({ port: config.metricsPort, host: config.host })
  } catch (error) {
    const problem = listenProblem(error, config)
    if (problem === undefined) throw error
    process.stderr.write(`gemgate: ${problem.line}\n`)
    process.exitCode = problem.exitCode
    grace.uninstall()
    await app.close()
  }
}

await main()
