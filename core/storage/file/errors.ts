import { errnoError, type GcwalError } from '../../errors.ts';

/** Whether `err` is a Node system error with this `code` (ENOENT, EEXIST...). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** Map a filesystem error in the repository to StorageError with a hint; never NotFound (callers decide that). */
export function mapFsError(err: unknown, what: string): GcwalError {
  return errnoError(err, what, 'repository');
}
