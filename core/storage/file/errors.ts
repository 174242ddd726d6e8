import { GcwalError, StorageError } from '../../errors.ts';

/** Whether `err` is a Node system error with this `code` (ENOENT, EEXIST...). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** Map a filesystem error to StorageError with a hint; never NotFound (callers decide that). */
export function mapFsError(err: unknown, what: string): GcwalError {
  if (err instanceof GcwalError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? 'unknown';
  const message = `${what} failed: ${code}`;
  if (code === 'EACCES' || code === 'EPERM') return new StorageError(message, false, 'check that the user running gcwal can read and write the repository directory', { cause: err });
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StorageError(message, false, 'the repository file system is full; free space and retry', { cause: err });
  if (code === 'ABORT_ERR') return new StorageError(`${what} was cancelled`, false, 'the operation was interrupted', { cause: err });
  return new StorageError(message, code === 'EIO' || code === 'EAGAIN' || code === 'EBUSY', 'check the repository file system and retry', { cause: err });
}
