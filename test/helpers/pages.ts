import type { Page } from 'playwright-core'
import type { Test } from 'tap'
import { contextWithCookies, startOrigin } from './chromium.js'
import type { Stack } from './stack.js'

/** A page on another origin (same site: 127.0.0.1 on another port, so the Lax cookie is still sent). */
export async function otherOrigin (t: Test): Promise<string> {
  return await startOrigin(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>other</title>') })
}

/** A Chromium page whose context holds the session cookie of a person signed in to the stack. */
export async function browserWithSession (t: Test, stack: Stack): Promise<Page> {
  const { browser: signedIn } = await stack.signIn()
  return await (await contextWithCookies(t, stack.url, signedIn.cookies)).newPage()
}
