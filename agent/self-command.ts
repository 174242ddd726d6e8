/**
 * The gcwal that is running, as an absolute path a command line can run it
 * by again (backup-fetch's restore_command), the way pgBackRest writes its
 * own executable's path: the restored server may have another PATH than the
 * person restoring, or none holding gcwal.
 *
 * The launcher (agent/wal/launcher.sh) passes its $0 in LAUNCHER_ENV. That is
 * the path as the user named it, and it is kept so: a /usr/local/bin/gcwal
 * linking into node_modules stays /usr/local/bin/gcwal (an upgrade that moves
 * the package keeps the link working); a relative path is made absolute
 * against the directory the user was in; a bare name, which the shell found
 * on PATH, becomes the PATH entry it was found in.
 */
import { accessSync, constants, statSync } from 'node:fs';
import * as path from 'node:path';

/** The variable the launcher sets to its $0 before starting Node; internal, not a setting. */
export const LAUNCHER_ENV = 'GCWAL_LAUNCHER';

/** What the process entry knows about how gcwal was started. */
export interface SelfInvocation {
  /** the launcher's $0 (LAUNCHER_ENV); undefined when Node runs the bundle directly */
  launcher: string | undefined;
  /** the script Node runs (process.argv[1]): the bundle, or agent/cli.ts in a checkout */
  script: string | undefined;
}

/** The command restore_command runs when nothing better is known: found on the server's PATH. */
export const BARE_COMMAND = 'gcwal';

/** The file system questions the resolution asks, so that it can be tested as a pure function. */
export interface PathProbe {
  /** an executable regular file (symbolic links followed) */
  isExecutable(file: string): boolean;
}

/**
 * `invokedAs` (a launcher's $0) as an absolute path, symbolic links kept:
 * with a slash, against `cwd`; a bare name, in the first entry of `pathEnv`
 * (colon-separated, an empty entry meaning `cwd`) that holds it executable,
 * as the shell searched. `.` and empty components are dropped, `..` kept
 * (lexical removal could change the file meant when a link precedes it).
 * Undefined for an empty name or a bare one found on no PATH entry.
 */
export function absoluteInvocation(invokedAs: string, cwd: string, pathEnv: string | undefined, probe: PathProbe): string | undefined {
  if (invokedAs === '') return undefined;
  if (invokedAs.includes('/')) return join(cwd, invokedAs);
  for (const entry of (pathEnv ?? '').split(':')) {
    const candidate = join(cwd, entry === '' ? invokedAs : `${entry}/${invokedAs}`);
    if (probe.isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** `file` against `base` (unless absolute), without `.` and empty components. */
function join(base: string, file: string): string {
  const parts = (file.startsWith('/') ? file : `${base}/${file}`).split('/').filter((p) => p !== '' && p !== '.');
  return `/${parts.join('/')}`;
}

/**
 * The gcwal to write into a command line: the launcher as invoked (see
 * absoluteInvocation); else, when Node runs the bundle directly, the
 * launcher the build puts beside it (dist/gcwal); else the bare name, found
 * on the server's PATH.
 */
export function selfCommand(self: SelfInvocation, cwd: string, pathEnv: string | undefined, probe: PathProbe): string {
  const launched = self.launcher === undefined ? undefined : absoluteInvocation(self.launcher, cwd, pathEnv, probe);
  if (launched) return launched;
  if (self.script) {
    const beside = path.join(path.dirname(path.resolve(cwd, self.script)), BARE_COMMAND);
    if (probe.isExecutable(beside)) return beside;
  }
  return BARE_COMMAND;
}

/** The real file system's answers. */
export const fileSystemProbe: PathProbe = {
  isExecutable(file) {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  },
};

/**
 * The directory the user was in, as they named it: `pwd` (the shell's
 * logical PWD, symbolic links kept) when it is the same directory as
 * `physical` (Node's process.cwd(), links resolved), else `physical`.
 */
export function logicalCwd(pwd: string | undefined, physical: string): string {
  if (!pwd?.startsWith('/')) return physical;
  try {
    const a = statSync(pwd);
    const b = statSync(physical);
    return a.dev === b.dev && a.ino === b.ino ? pwd : physical;
  } catch {
    return physical;
  }
}
