import type { FastifyReply } from 'fastify'

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml (text: string): string {
  return text.replace(/[&<>"'`]/g, (character) => `&#${character.charCodeAt(0)};`)
}

/** Tags a template so every interpolated value is escaped unless it is already `Html`. */
export class Html {
  constructor (readonly text: string) {}
  toString (): string { return this.text }
}

/** `html\`<p>${value}</p>\`` escapes `value`; nested `html` fragments pass through. */
export function html (strings: TemplateStringsArray, ...values: unknown[]): Html {
  let text = strings[0]!
  values.forEach((value, index) => {
    const parts = Array.isArray(value) ? value : [value]
    text += parts.map((part) => part instanceof Html ? part.text : escapeHtml(String(part ?? ''))).join('')
    text += strings[index + 1]!
  })
  return new Html(text)
}

/** The gateway's own pages allow nothing but their inline styles, and no framing. */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const STYLE = `
:root{color-scheme:light dark;--bg:#f4f6f9;--card:#fff;--text:#1d2330;--muted:#586174;--accent:#1a66d6;--on-accent:#fff;--danger:#c5221f;--ok:#137333;--warn:#9a5b00;--border:#dde2ea;--code:#eef1f6;--ok-bg:#e6f4ea;--warn-bg:#fef3e0}
@media (prefers-color-scheme:dark){:root{--bg:#12151a;--card:#1b1f27;--text:#e6e9ef;--muted:#a0a9b8;--accent:#8ab4f8;--on-accent:#0b1d3a;--danger:#f28b82;--ok:#81c995;--warn:#fdd663;--border:#2e3440;--code:#252b35;--ok-bg:#1e3326;--warn-bg:#3a2f12}}
*{box-sizing:border-box}html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--text)}
.top{background:var(--card);border-bottom:1px solid var(--border)}
.top div{max-width:48rem;margin:0 auto;padding:.7rem 1rem;display:flex;align-items:center;gap:.5rem}
.logo{font-weight:700;font-size:1.2rem;display:flex;align-items:center;gap:.45rem;color:var(--text);text-decoration:none}.logo .gem{color:var(--accent)}
main{max-width:48rem;margin:0 auto;padding:1.25rem 1rem 2rem}
.card{background:var(--card);border:1px solid var(--border);border-radius:14px;padding:1.25rem;margin-bottom:1rem;overflow-x:auto}
h1{font-size:1.45rem;margin:.1rem 0 .75rem;line-height:1.25}h2{font-size:1.1rem;margin:0 0 .75rem}h3{font-size:.95rem;color:var(--muted);margin:1rem 0 0}p{margin:.5rem 0}
.spaced{margin-top:1rem}.signout{margin:0;justify-content:space-between}
.who{display:flex;align-items:center;gap:1rem}.who h1{margin:0}.who p{margin:0}
.avatar{flex:none;width:3rem;height:3rem;border-radius:50%;display:grid;place-items:center;background:var(--accent);color:var(--on-accent);font-weight:700;font-size:1.3rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1.25rem;margin:0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.button,button{display:inline-block;font:inherit;font-weight:600;border:1px solid transparent;border-radius:9px;padding:.5rem 1rem;background:var(--accent);color:var(--on-accent);text-decoration:none;cursor:pointer;min-height:2.5rem}
.button:hover,button:hover{filter:brightness(1.08)}
button.secondary,.button.secondary{background:transparent;color:var(--accent);border-color:var(--border)}
button.danger{background:transparent;color:var(--danger);border-color:var(--border);padding:.3rem .75rem;min-height:2.25rem}
button.copy{background:transparent;color:var(--accent);border-color:var(--border);padding:.2rem .7rem;min-height:2rem;font-size:.9rem}
:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
.muted{color:var(--muted)}.ok{color:var(--ok)}.warn{color:var(--warn)}
.badge{display:inline-block;border-radius:999px;padding:.05rem .65rem;font-size:.9rem;font-weight:600}
.badge.ok{background:var(--ok-bg)}.badge.warn{background:var(--warn-bg)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:.5rem .4rem;border-bottom:1px solid var(--border);font-size:.95rem;vertical-align:middle}
th{color:var(--muted);font-weight:600;font-size:.85rem}tr:last-child td{border-bottom:0}
input{font:inherit;padding:.45rem .65rem;border:1px solid var(--border);border-radius:9px;background:var(--bg);color:var(--text);min-height:2.5rem;min-width:0}
code,.key,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.88rem}
code{overflow-wrap:anywhere}
.key{display:flex;align-items:center;gap:.5rem;background:var(--code);border-radius:9px;padding:.6rem .8rem}
.key code{flex:1 1 auto;min-width:0}.key button.copy{flex:none}
pre{background:var(--code);border-radius:9px;padding:.75rem .9rem;margin:.4rem 0 1rem;overflow-x:auto;line-height:1.45;white-space:pre-wrap;overflow-wrap:anywhere}
.notice{background:var(--ok-bg);border-radius:9px;padding:.5rem .8rem}.nowrap{white-space:nowrap}
.snippet{position:relative}.snippet pre{padding-top:2.75rem}.snippet button.copy{position:absolute;top:.9rem;right:.5rem}
form.inline{display:inline}.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin-top:1rem}.row input{flex:1 1 12rem}
footer{max-width:48rem;margin:0 auto;padding:0 1rem 2rem;color:var(--muted);font-size:.85rem}
@media (max-width:560px){main{padding:.75rem .6rem 1.5rem}.card{padding:1rem;border-radius:12px}h1{font-size:1.25rem}
dl{grid-template-columns:1fr;gap:0}dd{margin-bottom:.5rem}th,td{padding:.45rem .25rem;font-size:.88rem}.row button{flex:1 1 100%}}
`

/** Where the gateway serves its pages' one script. */
export const PAGE_SCRIPT_PATH = '/auth/assets/gemgate.js'

// A cut gem, drawn inline: the pages load nothing they do not need.
const LOGO = '<svg width="26" height="26" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" opacity=".35" d="M6 3h12l4 6-10 12L2 9z"/><path fill="currentColor" d="M2 9h20L12 21zM8.5 3 12 9l3.5-6"/></svg>'

/** A whole page in the gateway's look; the script only adds copy buttons. */
export function layout (title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark"><title>${title} · Gemgate</title>
<style>${new Html(STYLE)}</style><script src="${PAGE_SCRIPT_PATH}" defer></script></head>
<body><header class="top"><div><a class="logo" href="/auth/status">${new Html(LOGO)}<span><span class="gem">Gem</span>gate</span></a></div></header>
<main>${body}</main></body></html>`
}

/** The pages' script: a Copy button beside every key and code snippet, and sign-out without leaving for the provider. Progressive: the pages work without it. */
export const PAGE_SCRIPT = `'use strict'
document.querySelectorAll('.key, .snippet').forEach(function (box) {
  var source = box.querySelector('code')
  if (source === null || !navigator.clipboard) return
  var button = document.createElement('button')
  button.type = 'button'
  button.className = 'copy'
  button.textContent = 'Copy'
  button.setAttribute('aria-label', 'Copy ' + (box.dataset.label || 'to the clipboard'))
  button.addEventListener('click', function () {
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = 'Copied'
      setTimeout(function () { button.textContent = 'Copy' }, 2000)
    }, function () { button.textContent = 'Select and copy' })
  })
  box.append(button)
})
// Revoking cannot be undone: ask first. Without the script the form still works, unasked.
document.querySelectorAll('form[data-confirm]').forEach(function (form) {
  form.addEventListener('submit', function (event) {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault()
  })
})
// Sign out with fetch, then show the signed-out status page: a form's redirect chain would end at
// the provider, which this page's CSP (form-action 'self') does not let a form reach.
document.querySelectorAll('form[data-sign-out]').forEach(function (form) {
  form.addEventListener('submit', function (event) {
    event.preventDefault()
    fetch(form.action, { method: 'POST', credentials: 'same-origin' }).then(function () { location.assign('/auth/status?signed-out') })
  })
})
`

/**
 * Sends one of the gateway's pages with its security headers. Referrer-Policy is same-origin,
 * not no-referrer: under no-referrer a browser sends `Origin: null` with a form POST, and the
 * CSRF check would refuse the page's own forms (create key, revoke, sign out). A route that
 * set its own policy (the callback: no-referrer, its URL holds the code) keeps it.
 */
export function sendPage (reply: FastifyReply, status: number, page: Html): FastifyReply {
  return reply.code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    // Opened from an app page (same origin), a gateway page gets its own browsing context group:
    // the app's script holds no handle to it, so it cannot read a key form or a new key there.
    .header('cross-origin-opener-policy', 'noopener-allow-popups')
    .header('referrer-policy', reply.hasHeader('referrer-policy') ? reply.getHeader('referrer-policy') : 'same-origin')
    .header('cache-control', 'no-store')
    .send(page.text)
}

/** A small error page: what went wrong, and a way to sign in again. */
export function errorPage (title: string, message: string): Html {
  return layout(title, html`<section class="card" role="alert"><h1>${title}</h1><p>${message}</p>
<p><a class="button" href="/auth/login">Sign in again</a></p></section>`)
}
