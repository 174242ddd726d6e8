/**
 * What a process entry (cli.ts, cli-wal.ts) does around the CLI: the only
 * code that reads process.env and argv, handles SIGINT/SIGTERM and calls
 * process.exit. Import it from entries only.
 */
import { setMaxListeners } from 'node:events';
import { reportEscaped, type MainIo } from './run.ts';
import { LAUNCHER_ENV } from './self-command.ts';

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

  const argv = process.argv.slice(2);
  // Read once here and not passed on to the processes gcwal starts.
  const launcher = process.env[LAUNCHER_ENV];
  delete process.env[LAUNCHER_ENV];
  const io: MainIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    interactive: Boolean(process.stderr.isTTY),
    cwd: process.cwd(),
    signal: controller.signal,
    self: { launcher, script: process.argv[1] },
  };
  // A bug that escapes every await would end Node with exit 1, "not in the
  // archive" to restore_command's caller: it is this command's failure.
  const escaped = (err: unknown) => process.exit(reportEscaped(argv, process.env, io, err));
  process.on('uncaughtException', escaped);
  process.on('unhandledRejection', escaped);

  const code = await cli(argv, process.env, io);
  // Let stdout/stderr drain before exiting (pipes are asynchronous).
  // A command that finishes cleanly after a signal (gcwal local) exits 0;
  // one that was cut short reports the signal.
  process.exitCode = interrupted && code !== 0 ? interrupted : code;
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(process.exitCode);
}
