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

/** The provider refused the refresh token for good (invalid_grant, invalid_client). */
export class RefreshRejectedError extends Error {
  constructor (readonly error: string, options?: ErrorOptions) {
    super(`the provider refused the refresh token: ${error}`, options)
  }
}

/** OAuth errors after which retrying cannot help: the grant is revoked, expired, or not ours. */
export const SIGN_OUT_ERRORS: ReadonlySet<string> = new Set(['invalid_grant', 'invalid_client'])

/**
 * The refresh grant through openid-client against the discovered provider. Anything other than
 * a 4xx invalid_grant / invalid_client (network errors, timeouts, 5xx) is left as is: transient.
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
      throw error
    }
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
