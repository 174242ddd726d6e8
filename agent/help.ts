import { ExitCode } from '../core/errors.ts';
import type { CommandTable } from './commands/table.ts';
import type { Command } from './commands/types.ts';
import { CONFIG_TABLE } from './config.ts';

/** The exit codes every command may return, for --help and the README. */
export const EXIT_CODES: readonly [number, string][] = [
  [ExitCode.ok, 'success'],
  [ExitCode.notFound, 'not found: the WAL file or backup is not in the repository (and nothing else went wrong)'],
  [ExitCode.usage, "bad command line or configuration; backup-fetch: also a backup of another PostgreSQL major version than the server that will start it (--pg-bin, or the version dest's path names), refused before anything is written"],
  [ExitCode.invalidInput, 'the input file is missing or is not what it claims to be (e.g. not WAL)'],
  [ExitCode.clusterMismatch, 'the WAL, backup or cluster belongs to a different system identifier than the repository'],
  [ExitCode.conflict, 'different content already exists under that name; nothing was overwritten'],
  [ExitCode.corrupt, 'an object failed verification (checksum, size, format)'],
  [ExitCode.storage, 'the repository could not be read or written (after retries)'],
  [ExitCode.auth, 'credentials missing or lacking a permission'],
  [ExitCode.postgres, 'PostgreSQL could not be reached or refused a query'],
  [ExitCode.destinationNotEmpty, 'the restore destination, or the location repo-create was given (files but no gcwal.json), is not empty'],
  [ExitCode.internal, 'unexpected internal error (a bug; please report it), or the launcher found no bundle beside it (reinstall)'],
  [ExitCode.localIo, 'a local file could not be read or written (disk full, permissions)'],
  [ExitCode.repoMissing, 'the repository does not exist: no gcwal.json (a missing or empty file:// directory, an empty gs:// prefix, a missing bucket); check GCWAL_REPO, or create it with gcwal repo-create'],
  [ExitCode.walNotArchived, 'backup-push: the WAL the backup needs is not archived into the repository (a primary with archive_mode off, or none of the missing WAL arrived for GCWAL_ARCHIVE_TIMEOUT); no backup was recorded'],
  [ExitCode.interrupted, 'interrupted (SIGINT/SIGTERM); nothing was left half-written'],
  [ExitCode.recoveryFatal, 'wal-fetch during archive recovery failed for any reason but "not in the archive" (every other failure, whatever its code elsewhere): PostgreSQL stops instead of promoting early'],
];

function pad(s: string, n: number): string {
  return s.length >= n ? `${s}  ` : s + ' '.repeat(n - s.length);
}

/** Top-level --help text, listing `commands`. */
export function mainHelp(commands: CommandTable): string {
  const lines = [
    'gcwal: continuous archiving and point-in-time recovery for PostgreSQL',
    '',
    'usage: gcwal <command> [options] [arguments]',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${pad(name, 14)}${c.summary}`),
    '',
    'configuration (environment variable, or the --flag):',
    ...CONFIG_TABLE.map((e) => `  ${pad(e.envOnly ? e.env : `${e.env} / --${e.flag}`, 44)}${e.description}${e.default !== undefined ? ` (default ${e.default})` : ''}`),
    '',
    'exit codes:',
    ...EXIT_CODES.map(([code, text]) => `  ${pad(String(code), 5)}${text}`),
    '',
    'run gcwal <command> --help for details; gcwal --version prints the version',
    '',
  ];
  return lines.join('\n');
}

/** One command's --help text. */
export function helpForCommand(command: Command): string {
  const opts = Object.entries(command.options).map(([flag, spec]) => {
    const left = `--${flag}${spec.type === 'string' ? ` ${spec.placeholder ?? 'VALUE'}` : ''}`;
    return `  ${pad(left, 32)}${spec.description}`;
  });
  return [
    `usage: ${command.usage}`,
    '',
    command.summary,
    '',
    command.details.trim(),
    '',
    ...(opts.length ? ['options:', ...opts, ''] : []),
    `every configuration variable but ${CONFIG_TABLE.filter((e) => e.envOnly).map((e) => e.env).join(', ')} is also accepted as a --flag; see gcwal --help`,
    '',
  ].join('\n');
}
