import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config/load.js'
import { loggerOptions } from './ops/logger.js'

/** sysexits.h EX_CONFIG: the configuration is wrong, restarting will not help. */
const EX_CONFIG = 78

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() })
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`gemgate: ${error.message}\n`)
    process.exitCode = EX_CONFIG
    return
  }

  const app = await buildApp(config, { logger: loggerOptions(config, process.stdout.isTTY === true) })
  closeWithGrace({ delay: config.shutdownDrainSeconds * 1000, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: draining in-flight requests')
    await app.close()
  })
  await app.listen({ port: config.port, host: config.host })
  if (app.opsServer !== null) await app.opsServer.listen({ port: config.metricsPort, host: config.host })
}

await main()
