import { SpanStatusCode, trace } from '@opentelemetry/api'
import * as oidc from 'openid-client'

/** What a refresh grant returned: the new access token, and a rotated refresh token if any. */
export interface GrantResult {
  accessToken: string
  refreshToken?: string
  expiresInSeconds?: number
  scope?: string
}

/** Spends a refresh token at the provider. Throws RefreshRejectedError when only a new sign-in helps. */
export type RefreshGrant = (refreshToken: string) => Promise<GrantResult>

/** The provider refused the refresh token for good (invalid_grant): only a new sign-in helps. */
export class RefreshRejectedError extends Error {
  constructor (readonly error: string, options?: ErrorOptions) {
    super(`the provider refused the refresh token: ${error}`, options)
  }
}

/**
 * The provider refused the gateway itself (invalid_client, unauthorized_client): a wrong client
 * id or secret in a deploy. Every person's refresh would fail alike, so nobody is signed out;
 * the gateway retries with backoff and recovers once the configuration is fixed.
 */
export class ProviderConfigError extends Error {
  constructor (readonly error: string, options?: ErrorOptions) {
    super(`the provider refused the gateway's client credentials: ${error}`, options)
  }
}

/** OAuth errors after which retrying cannot help: the grant is revoked, expired, or not ours. */
export const SIGN_OUT_ERRORS: ReadonlySet<string> = new Set(['invalid_grant'])
/** OAuth errors that are about the gateway's client registration, not about the person. */
export const CONFIG_ERRORS: ReadonlySet<string> = new Set(['invalid_client', 'unauthorized_client'])

/** Revokes a refresh token at the provider (a person gone inactive); resolves when the provider has no revocation endpoint. */
export type RevokeGrant = (refreshToken: string) => Promise<void>

/**
 * The refresh grant through openid-client against the discovered provider. A 4xx invalid_grant
 * signs the person out, a 4xx invalid_client is a configuration failure; anything else (network
 * errors, timeouts, 5xx) is left as is: transient.
 */
export function openidRefreshGrant (provider: { configuration: () => Promise<oidc.Configuration> }): RefreshGrant {
  return async (refreshToken) => {
    const configuration = await provider.configuration()
    try {
      const response = await oidc.refreshTokenGrant(configuration, refreshToken)
      return {
        accessToken: response.access_token,
        ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
        ...(response.expiresIn() === undefined ? {} : { expiresInSeconds: response.expiresIn() }),
        ...(response.scope === undefined ? {} : { scope: response.scope }),
      }
    } catch (error) {
      if (error instanceof oidc.ResponseBodyError && error.status < 500 && SIGN_OUT_ERRORS.has(error.error)) {
        throw new RefreshRejectedError(error.error, { cause: error })
      }
      if (error instanceof oidc.ResponseBodyError && error.status < 500 && CONFIG_ERRORS.has(error.error)) {
        throw new ProviderConfigError(error.error, { cause: error })
      }
      throw error
    }
  }
}

/** Token revocation (RFC 7009) through openid-client against the discovered provider. */
export function openidRevokeGrant (provider: { configuration: () => Promise<oidc.Configuration> }): RevokeGrant {
  return async (refreshToken) => {
    const configuration = await provider.configuration()
    if (configuration.serverMetadata().revocation_endpoint === undefined) return
    await oidc.tokenRevocation(configuration, refreshToken, { token_type_hint: 'refresh_token' })
  }
}

/**
 * The grant inside a `token refresh` span: a child of the request that needed fresh tokens, or
 * a trace of its own for the background refresher. Through `@opentelemetry/api` alone, so with
 * tracing off (no SDK installed) the span is the API's no-op and costs nothing.
 */
export function tracedGrant (grant: RefreshGrant): RefreshGrant {
  const tracer = trace.getTracer('gemgate')
  return async (refreshToken) => await tracer.startActiveSpan('token refresh', async (span) => {
    try {
      return await grant(refreshToken)
    } catch (error) {
      // The error's kind only: a provider's message could quote what was sent.
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof RefreshRejectedError ? error.error : 'transient' })
      throw error
    } finally {
      span.end()
    }
  })
}
