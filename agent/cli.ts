#!/usr/bin/env node
/**
 * The process entry of the full CLI (every command). wal-push and wal-fetch
 * also have an entry of their own, cli-wal.ts, which the launcher prefers.
 */
import { runAsProcess } from './entry.ts';
import { main } from './main.ts';

await runAsProcess(main);
