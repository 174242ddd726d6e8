#!/usr/bin/env node
/**
 * The process entry: the only place that reads process.env and argv and
 * calls process.exit. Everything else is in main.ts.
 */
import { setMaxListeners } from 'node:events';
import { main } from './main.ts';

const controller = new AbortController();
// Every stream of a backup or restore listens to this one signal.
setMaxListeners(0, controller.signal);
let interrupted = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted = sig === 'SIGINT' ? 130 : 143;
    controller.abort(new Error(`interrupted by ${sig}`));
  });
}

const code = await main(process.argv.slice(2), process.env, {
  stdout: process.stdout,
  stderr: process.stderr,
  interactive: Boolean(process.stderr.isTTY),
  cwd: process.cwd(),
  signal: controller.signal,
});
// Let stdout/stderr drain before exiting (pipes are asynchronous).
// A command that finishes cleanly after a signal (gcwal local) exits 0;
// one that was cut short reports the signal.
process.exitCode = interrupted && code !== 0 ? interrupted : code;
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(process.exitCode);
