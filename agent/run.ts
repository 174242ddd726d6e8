/**
 * The CLI between an entry (agent/cli.ts, every command; agent/wal/cli.ts,
 * the WAL commands) and a command: runCommandLine turns argv and the
 * environment into an exit code and is what tests call; runAsProcess wraps
 * it in the process (argv, process.env, signals, process.exit) and is called
 * by the entries only.
 */
import { setMaxListeners } from 'node:events';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { LzopHelper } from '../core/codec/lzo/parallel.ts';
import { asGcwalError, ExitCode, type GcwalError, UsageError } from '../core/errors.ts';
import { openStorage } from '../core/storage/open.ts';
import type { Storage } from '../core/storage/types.ts';
import type { CommandTable } from './commands/table.ts';
import type { Command } from './commands/types.ts';
import { CONFIG_TABLE, type Config, gcsStorageOptions, parseConfig, requireRepo } from './config.ts';
import type { CommandContext } from './context.ts';
import { helpForCommand, mainHelp } from './help.ts';
import { createLogger } from './log.ts';
import { failureForRecovery } from './recovery-exit.ts';
import { fileSystemProbe, LAUNCHER_ENV, logicalCwd, type SelfInvocation, selfCommand } from './self-command.ts';
import { VERSION } from './version.ts';

export interface MainIo {
  stdout: Writable;
  stderr: Writable;
  /** whether stderr is a terminal (progress display) */
  interactive: boolean;
  cwd: string;
  signal: AbortSignal;
  /** wal-push's lzo helper thread if the entry started it early (handed to the command's context) */
  lzopHelper?: LzopHelper;
  /** how gcwal was started (the launcher's $0, Node's script), for ctx.gcwalCommand */
  self?: SelfInvocation;
}

/**
 * Run the CLI over `commands`: parse `argv` (without node and script), build
 * the config from flags and `env`, run the command. Returns the exit code;
 * never throws and never calls process.exit (runAsProcess below does).
 * A name missing from `commands` is a usage error.
 */
export async function runCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: MainIo,
  commands: CommandTable,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0] && commands[rest[0]]) return printCommandHelp(commands, rest[0], io);
    io.stdout.write(mainHelp(commands));
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    io.stdout.write(`gcwal ${VERSION}\n`);
    return ExitCode.ok;
  }
  const entry = commands[name];
  if (!entry) return report(new UsageError(`unknown command "${name}"`, 'run gcwal --help for the list of commands'), io, 'text');
  if (rest.includes('--help') || rest.includes('-h')) return printCommandHelp(commands, name, io);

  let config: Config | undefined;
  try {
    const command = await entry.load();
    const { positionals, flags, options } = parseCommandLine(command, rest);
    config = parseConfig(flags, env);
    const log = createLogger(io.stderr, config.logFormat, config.verbose);
    let storage: Promise<Storage> | undefined;
    const cfg = config;
    const ctx: CommandContext = {
      config: cfg,
      storage: () => (storage ??= openStorage(requireRepo(cfg), { gcs: gcsStorageOptions(cfg) })),
      log,
      signal: io.signal,
      stdout: io.stdout,
      stderr: io.stderr,
      interactive: io.interactive,
      env,
      cwd: io.cwd,
      gcwalCommand: () => selfCommand(io.self ?? { launcher: undefined, script: undefined }, logicalCwd(env.PWD, io.cwd), env.PATH, fileSystemProbe),
      lzopHelper: io.lzopHelper,
    };
    return await command.run(ctx, positionals, options);
  } catch (err) {
    // Whatever failed (the command, its options, the configuration), restore_command's caller must read it right.
    return report(failureForRecovery(name, io.cwd, asGcwalError(err)), io, config?.logFormat ?? logFormatOf(env));
  }
}

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

/**
 * Report `err`, which escaped the command line `argv` (an uncaught exception,
 * an unhandled rejection: a bug), as that command's failure, and return its
 * exit code: Node's own exit 1 would read as "not in the archive".
 */
function reportEscaped(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: Pick<MainIo, 'stderr' | 'cwd'>, err: unknown): number {
  return report(failureForRecovery(argv[0], io.cwd, asGcwalError(err)), io, logFormatOf(env));
}

/** The log format before (or without) the configuration. */
function logFormatOf(env: Readonly<Record<string, string | undefined>>): 'text' | 'json' {
  return env.GCWAL_LOG_FORMAT === 'json' ? 'json' : 'text';
}

async function printCommandHelp(commands: CommandTable, name: string, io: MainIo): Promise<number> {
  io.stdout.write(helpForCommand(await commands[name]!.load()));
  return ExitCode.ok;
}

/** Split argv into positionals, global config flags and the command's own options. */
function parseCommandLine(command: Command, args: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const entry of CONFIG_TABLE) options[entry.flag] = { type: entry.kind === 'bool' ? 'boolean' : 'string' };
  for (const [flag, spec] of Object.entries(command.options)) {
    options[flag] = { type: spec.type };
    if (spec.multiple) options[flag].multiple = true;
    if (spec.short) options[flag].short = spec.short;
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message.split('\n')[0].replace(/\.$/, '');
    throw new UsageError(message.charAt(0).toLowerCase() + message.slice(1), `run gcwal ${command.name} --help`);
  }
  const [min, max] = typeof command.positionals === 'number' ? [command.positionals, command.positionals] : command.positionals;
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    throw new UsageError(
      `${command.name} takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${parsed.positionals.length}`,
      `usage: ${command.usage}`,
    );
  }
  const flags: Record<string, string | boolean | undefined> = {};
  const own: Record<string, string | boolean | string[] | undefined> = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    if (k in command.options) own[k] = v as string | boolean | string[];
    else flags[k] = v as string | boolean;
  }
  return { positionals: parsed.positionals, flags, options: own };
}

/** Print one error line (text or JSON) and return its exit code. */
function report(err: GcwalError, io: Pick<MainIo, 'stderr'>, format: 'text' | 'json'): number {
  if (format === 'json') {
    io.stderr.write(
      JSON.stringify({
        severity: 'ERROR',
        message: err.message,
        code: err.code,
        hint: err.hint,
        exitCode: err.exitCode,
        component: 'gcwal',
        time: new Date().toISOString(),
      }) + '\n',
    );
  } else {
    io.stderr.write(`gcwal: error: ${err.message} (${err.hint})\n`);
  }
  return err.exitCode;
}
