import type { FastifyReply } from 'fastify'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { Config } from '../config/schema.js'

/** The gateway's cookie names and flags, which depend only on PUBLIC_URL. */
export interface CookieNames {
  session: string
  login: string
  secure: boolean
}

/**
 * `__Host-` on https pins the cookie to this exact origin (Secure, Path=/, no Domain);
 * browsers refuse that prefix on plain http, so localhost development uses bare names.
 */
export function cookieNames (config: Pick<Config, 'publicUrl'>): CookieNames {
  const secure = new URL(config.publicUrl).protocol === 'https:'
  return {
    session: secure ? '__Host-gemgate' : 'gemgate',
    login: secure ? '__Host-gemgate-login' : 'gemgate-login',
    secure,
  }
}

/** Flags every gateway cookie carries. */
export function cookieOptions (names: CookieNames, maxAgeSeconds: number): CookieSerializeOptions {
  return { path: '/', httpOnly: true, secure: names.secure, sameSite: 'lax', signed: true, maxAge: maxAgeSeconds }
}

/** Removes a gateway cookie with the same flags it was set with, so the browser matches it. */
export function clearCookie (reply: FastifyReply, names: CookieNames, name: string): void {
  reply.clearCookie(name, { path: '/', httpOnly: true, secure: names.secure, sameSite: 'lax' })
}

/** True for any cookie name the gateway owns (used to keep them from apps and upstreams). */
export function isGatewayCookie (name: string): boolean {
  return /^(__Host-)?gemgate(-login)?$/i.test(name)
}
