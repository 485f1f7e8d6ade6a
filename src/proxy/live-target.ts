/** The Live API methods, as Google names them in the WebSocket path. */
const LIVE_RPC = /^google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\.(BidiGenerateContent|BidiGenerateContentConstrained)$/

/** The paths the relay answers: the SDKs' own, and the JS SDK's with a doubled leading slash. */
export const LIVE_ROUTES = ['/ws/:rpc', '//ws/:rpc'] as const

/** One Live method the client asked for. */
export interface LiveRpc {
  version: 'v1' | 'v1beta' | 'v1alpha'
  method: 'BidiGenerateContent' | 'BidiGenerateContentConstrained'
}

/** The Live method a raw request target names, or null when it names none. */
export function liveRpc (rawUrl: string): LiveRpc | null {
  const path = rawUrl.split('?', 1)[0]!.replace(/^\/\/?ws\//, '')
  const match = LIVE_RPC.exec(path)
  return match === null ? null : { version: match[1] as LiveRpc['version'], method: match[2] as LiveRpc['method'] }
}

/**
 * Where the relay connects: UPSTREAM_URL's host, same API version, always the plain method.
 * The Constrained method exists for Google's own ephemeral tokens; the gateway checks its own
 * tokens itself and connects with the person's credential, which the plain method takes.
 * No query string: the client's (its `key` or `access_token`) never goes upstream.
 */
export function upstreamLiveUrl (upstreamUrl: string, rpc: LiveRpc): string {
  const url = new URL(upstreamUrl)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  url.pathname = `/ws/google.ai.generativelanguage.${rpc.version}.GenerativeService.BidiGenerateContent`
  url.search = ''
  return url.toString()
}
