// Runs a TypeScript file with the ts-node ESM loader that tap uses, without type checking
// (`npm run typecheck` does that): node --import ./scripts/register-ts.mjs scripts/x.ts
process.env.TS_NODE_TRANSPILE_ONLY ??= '1'
await import('@tapjs/typescript/import')
