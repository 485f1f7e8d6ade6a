/**
 * The model the gateway's snippets, the demo and the docs name unless told otherwise: one that
 * Google serves today (the 2.5 generation was retired on 2026-12-01), as the installed
 * @google/genai's own README names it. DEFAULT_MODEL overrides it; nothing else spells a name.
 */
export const DEFAULT_MODEL = 'gemini-3.8-flash'
