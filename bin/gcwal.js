#!/usr/bin/env node
// Thin launcher for the bundled CLI (scripts/build.mjs writes dist/gcwal.mjs).
// The bundle runs the command itself when imported; this file only checks the
// build exists so a fresh checkout fails with a clear message, not a stack.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/gcwal.mjs', import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write('gcwal: error: gcwal is not built: run npm run build\n');
  process.exit(11);
}
await import(bundle.href);
