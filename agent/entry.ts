/**
 * What a process entry (cli.ts, cli-wal.ts) does around the CLI: the only
 * code that reads process.env and argv, handles SIGINT/SIGTERM and calls
 * process.exit. Import it from entries only.
 */
import { setMaxListeners } from 'node:events';
import type { MainIo } from './run.ts';

/** Runs a CLI's argv → exit code function. */
export type CliMain = (argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: MainIo) => Promise<number>;

/**
 * Run `cli` with this process's argv, environment and streams, then exit
 * with its code once stdout has drained. Never returns.
 */
export async function runAsProcess(cli: CliMain): Promise<never> {
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

  const code = await cli(process.argv.slice(2), process.env, {
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
}
