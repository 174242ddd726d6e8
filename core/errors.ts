/**
 * Every error gcwal raises on purpose: a stable `code`, a one-line lowercase
 * `message` (no trailing period), a `hint` saying what to do, and the process
 * exit code the CLI maps it to. Exit codes are part of the public contract
 * (docs/commands.md, generated from help.ts's EXIT_CODES) because archive_command/restore_command read them.
 */
export class GcwalError extends Error {
  /** stable machine-readable code, e.g. `not_found` */
  readonly code: string;
  /** what the user should do next; one line */
  readonly hint: string;
  /** process exit code the CLI uses for this error */
  readonly exitCode: number;

  constructor(code: string, message: string, hint: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

/** Exit codes, one per error class. 1 is reserved for "really not there". */
export const ExitCode = {
  ok: 0,
  notFound: 1,
  usage: 2,
  invalidInput: 3,
  clusterMismatch: 4,
  conflict: 5,
  corrupt: 6,
  storage: 7,
  auth: 8,
  postgres: 9,
  destinationNotEmpty: 10,
  internal: 11,
  localIo: 12,
  /** the repository has no gcwal.json: never created (gcwal repo-create), or GCWAL_REPO points at the wrong place */
  repoMissing: 13,
  /** backup-push: the WAL the backup needs is not being archived into the repository (archive_mode off, or not there within GCWAL_ARCHIVE_TIMEOUT) */
  walNotArchived: 14,
  interrupted: 130,
  /** wal-fetch during archive recovery: > 125 makes PostgreSQL stop instead of promoting early */
  recoveryFatal: 126,
} as const;

/** The object, backup or file asked for does not exist (and nothing else went wrong). */
export class NotFoundError extends GcwalError {
  constructor(message: string, hint = 'check the name and the repository', options?: { cause?: unknown }) {
    super('not_found', message, hint, ExitCode.notFound, options);
  }
}

/**
 * The repository has no identity (gcwal.json): it was never created with
 * `gcwal repo-create`, or GCWAL_REPO names the wrong place (a typo, an
 * unmounted volume, a missing bucket). Never created implicitly: a push into
 * the wrong place would start a second archive nobody restores from.
 */
export class RepositoryMissingError extends GcwalError {
  constructor(url: string, detail = 'has no gcwal.json', options?: { cause?: unknown; hint?: string }) {
    super(
      'repo_missing',
      `repository ${url} ${detail}`,
      options?.hint ??
        'check GCWAL_REPO and that its volume is mounted; only if this is a new repository, create it once with gcwal repo-create (with the same PGHOST/PGPORT settings as backup-push)',
      ExitCode.repoMissing,
      options,
    );
  }
}

/**
 * gcwal repo-create found objects but no gcwal.json where the repository is
 * to be: another tool's files, or an archive whose identity was lost. Not
 * adopted without --force.
 */
export class RepositoryNotEmptyError extends GcwalError {
  constructor(url: string, found: string) {
    super(
      'repo_not_empty',
      `repository ${url} is not empty (it holds ${found}) but has no gcwal.json`,
      "point GCWAL_REPO at an empty or new location; if this is this cluster's own archive whose gcwal.json was lost, run gcwal repo-create --force",
      ExitCode.destinationNotEmpty,
    );
  }
}

/**
 * backup-push: the WAL the backup needs does not reach the repository
 * (archive_mode is off, or archive_command fails or lags past the archive
 * timeout); such a backup cannot be restored, so it is not recorded.
 */
export class WalNotArchivedError extends GcwalError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('wal_not_archived', message, hint, ExitCode.walNotArchived, options);
  }
}

/** Bad command line or configuration. */
export class UsageError extends GcwalError {
  constructor(message: string, hint = 'run gcwal --help', options?: { cause?: unknown }) {
    super('usage', message, hint, ExitCode.usage, options);
  }
}

/**
 * A backup restored for a PostgreSQL major version other than the one it was
 * taken on (backup-fetch, when it can tell which server will start it). A
 * choice the command line made, so exit 2.
 */
export class VersionMismatchError extends GcwalError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('version_mismatch', message, hint, ExitCode.usage, options);
  }
}

/** The input file is missing, unreadable, or not what it claims to be (e.g. not WAL). */
export class InvalidInputError extends GcwalError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('invalid_input', message, hint, ExitCode.invalidInput, options);
  }
}

/** WAL or a backup from a different cluster (system identifier) than the repository holds. */
export class ClusterMismatchError extends GcwalError {
  constructor(message: string, hint = "point GCWAL_REPO at this cluster's own repository", options?: { cause?: unknown }) {
    super('cluster_mismatch', message, hint, ExitCode.clusterMismatch, options);
  }
}

/** Different content already exists under the same name; nothing was overwritten. */
export class ConflictError extends GcwalError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('conflict', message, hint, ExitCode.conflict, options);
  }
}

/** Storage-level: a create-only write found the object already present. */
export class AlreadyExistsError extends GcwalError {
  constructor(key: string, options?: { cause?: unknown }) {
    super('already_exists', `object ${key} already exists`, 'objects are never overwritten; compare contents or use another name', ExitCode.conflict, options);
  }
}

/**
 * Storage-level: a conditional replace or delete found another generation of
 * the object live (or none at all) than the one it was made for; nothing was
 * changed. Callers doing read-modify-write read again and retry.
 */
export class PreconditionFailedError extends GcwalError {
  /** the object key */
  readonly key: string;
  /** the generation the call required */
  readonly expected: string;
  /** the live generation when the driver knows it (`undefined` = unknown, `'0'` = no object) */
  readonly actual: string | undefined;
  constructor(key: string, expected: string, actual?: string, options?: { cause?: unknown }) {
    const found = actual === undefined ? 'another generation is live' : actual === '0' ? 'the object does not exist' : `generation ${actual} is live`;
    super(
      'precondition_failed',
      `object ${key} changed: expected generation ${expected}, ${found}`,
      'someone else changed the object first; read it again and retry',
      ExitCode.conflict,
      options,
    );
    this.key = key;
    this.expected = expected;
    this.actual = actual;
  }
}

/** An object failed verification (size, checksum, codec, manifest). */
export class CorruptObjectError extends GcwalError {
  constructor(
    message: string,
    hint = 'the object in the repository is damaged; restore from another backup or re-archive it from the source',
    options?: { cause?: unknown },
  ) {
    super('corrupt', message, hint, ExitCode.corrupt, options);
  }
}

/**
 * The repository could not be reached or read/written (I/O, network, 5xx).
 * `transient` says whether retrying may help.
 */
export class StorageError extends GcwalError {
  readonly transient: boolean;
  constructor(message: string, transient: boolean, hint = 'check the repository is reachable and retry', options?: { cause?: unknown }) {
    super('storage', message, hint, ExitCode.storage, options);
    this.transient = transient;
  }
}

/** Credentials missing, rejected, or lacking a permission. Never reported as not found. */
export class AuthError extends GcwalError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('auth', message, hint, ExitCode.auth, options);
  }
}

/** PostgreSQL could not be reached or refused a query. */
export class PostgresError extends GcwalError {
  constructor(message: string, hint = 'check PGHOST, PGPORT, PGUSER, PGDATABASE and that the server is running', options?: { cause?: unknown }) {
    super('postgres', message, hint, ExitCode.postgres, options);
  }
}

/** A restore destination that must be empty is not. */
export class DestinationNotEmptyError extends GcwalError {
  constructor(path: string) {
    super('destination_not_empty', `destination ${path} is not empty`, 'restore into a new or empty directory', ExitCode.destinationNotEmpty);
  }
}

/** Reading or writing the local file system failed (disk full, permissions, I/O error). */
export class LocalIoError extends GcwalError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('local_io', message, hint, ExitCode.localIo, options);
  }
}

/**
 * What a file-system errno tells the user, on a local path and in a file://
 * repository: the one table both mappings below read.
 */
const ERRNO_HINTS: readonly { codes: readonly string[]; local: string; repository: string }[] = [
  {
    codes: ['ENOSPC', 'EDQUOT'],
    local: 'the file system is full; free space and retry',
    repository: 'the repository file system is full; free space and retry',
  },
  {
    codes: ['EACCES', 'EPERM'],
    local: 'check the permissions of the path for the user running gcwal',
    repository: 'check that the user running gcwal can read and write the repository directory',
  },
  { codes: ['EROFS'], local: 'the file system is read-only', repository: 'the repository file system is read-only' },
];
/** Errnos of a repository file system that may pass when tried again. */
const TRANSIENT_ERRNOS: ReadonlySet<string> = new Set(['EIO', 'EAGAIN', 'EBUSY']);

/**
 * Map a Node file-system error to a GcwalError with a hint: on a local path
 * LocalIoError; in a file:// repository StorageError (transient for EIO,
 * EAGAIN and EBUSY), never NotFoundError (callers decide that). A GcwalError
 * is returned as it is.
 */
export function errnoError(err: unknown, what: string, place: 'local' | 'repository'): GcwalError {
  if (err instanceof GcwalError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? 'unknown';
  if (place === 'repository' && code === 'ABORT_ERR') return new StorageError(`${what} was cancelled`, false, 'the operation was interrupted', { cause: err });
  const row = ERRNO_HINTS.find((r) => r.codes.includes(code));
  const message = `${what} failed: ${code}`;
  if (place === 'local') return new LocalIoError(message, row?.local ?? 'check the local disk and retry', { cause: err });
  return new StorageError(message, TRANSIENT_ERRNOS.has(code), row?.repository ?? 'check the repository file system and retry', { cause: err });
}

/** Map a Node file-system error on a local path to LocalIoError with a hint. */
export function localIoError(err: unknown, what: string): GcwalError {
  return errnoError(err, what, 'local');
}

/** Turn anything thrown into a GcwalError, keeping the original as `cause`. */
export function asGcwalError(err: unknown): GcwalError {
  if (err instanceof GcwalError) return err;
  const e = err as { name?: string; code?: string } | undefined;
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') {
    return new GcwalError('interrupted', 'interrupted before finishing', 'nothing was left half-written; run the command again', ExitCode.interrupted, {
      cause: err,
    });
  }
  if (typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code)) {
    return localIoError(err, err instanceof Error ? err.message.split(':')[0] : 'a file operation');
  }
  const message = err instanceof Error ? err.message : String(err);
  return new GcwalError('internal', `unexpected error: ${message.split('\n')[0]}`, 'this is a bug in gcwal; please report it with the log', ExitCode.internal, {
    cause: err,
  });
}
