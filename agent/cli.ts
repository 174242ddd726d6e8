#!/usr/bin/env node
/**
 * The process entry of the full CLI (every command; the build's
 * dist/gcwal.mjs). wal-push and wal-fetch also have an entry of their own,
 * agent/wal/cli.ts, which the launcher prefers.
 */
import { main } from './main.ts';
import { runAsProcess } from './run.ts';

await runAsProcess(main);
