import * as oidc from 'openid-client'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/schema.js'
import { ServiceUnavailableError } from '../errors.js'

/** Seconds openid-client waits for any one call to the provider (PROVIDER_TIMEOUT_SECONDS overrides it). */
export const DEFAULT_PROVIDER_TIMEOUT = 10

/** The provider settings; the timeout may be left out (tests, tools). */
export type ProviderSettings = Omit<Config['oidc'], 'timeoutSeconds'> & { timeoutSeconds?: number }
const RETRY_DELAYS_MS = [500, 1_000, 2_000, 5_000, 10_000, 30_000]

/**
 * The OpenID provider as openid-client sees it: discovered once, retried in the background
 * while the provider is down, so the gateway starts (and says it is not ready) without it.
 */
export class OidcProvider {
  #configuration: oidc.Configuration | undefined
  #loading: Promise<oidc.Configuration> | undefined
  #retryTimer: NodeJS.Timeout | undefined
  #attempt = 0
  #stopped = false

  constructor (private readonly settings: ProviderSettings, private readonly log: FastifyBaseLogger) {}

  /** True once the discovery document is loaded. */
  get loaded (): boolean {
    return this.#configuration !== undefined
  }

  /** Starts discovery now and keeps retrying with backoff until it succeeds. */
  start (): void {
    this.configuration().catch(() => this.#scheduleRetry())
  }

  stop (): void {
    this.#stopped = true
    clearTimeout(this.#retryTimer)
  }

  /** The discovered client configuration; ServiceUnavailableError while the provider is unreachable. */
  async configuration (): Promise<oidc.Configuration> {
    if (this.#configuration !== undefined) return this.#configuration
    this.#loading ??= this.#discover().finally(() => { this.#loading = undefined })
    return await this.#loading
  }

  async #discover (): Promise<oidc.Configuration> {
    const issuer = new URL(this.settings.issuer)
    const timeout = this.settings.timeoutSeconds ?? DEFAULT_PROVIDER_TIMEOUT
    try {
      const configuration = await oidc.discovery(issuer, this.settings.clientId, { client_secret: this.settings.clientSecret }, oidc.ClientSecretPost(this.settings.clientSecret), {
        timeout,
        // Plain http passed validation only for a loopback issuer (development and tests).
        execute: issuer.protocol === 'http:' ? [oidc.allowInsecureRequests] : [],
      })
      configuration.timeout = timeout
      this.#configuration = configuration
      this.#attempt = 0
      this.log.info({ issuer: this.settings.issuer }, 'provider metadata loaded')
      return configuration
    } catch (error) {
      this.log.warn({ issuer: this.settings.issuer, reason: String((error as Error).cause ?? error) }, 'provider discovery failed')
      throw new ServiceUnavailableError('The sign-in provider is not reachable right now; try again shortly.', { cause: error })
    }
  }

  #scheduleRetry (): void {
    if (this.#stopped || this.loaded) return
    const delay = RETRY_DELAYS_MS[Math.min(this.#attempt++, RETRY_DELAYS_MS.length - 1)]!
    this.#retryTimer = setTimeout(() => this.start(), delay)
    this.#retryTimer.unref()
  }
}
