/**
 * Paths inside a backup. They come from manifests and tar headers, which are
 * untrusted (a damaged or malicious part must not make restore write outside
 * its targets), so every one is checked before anything uses it.
 */
import { CorruptObjectError } from '../errors.ts';
import { quoteForMessage } from '../wal/quote.ts';

/**
 * Check a data-directory-relative path from a manifest or a tar header and
 * return it without a trailing slash. Throws CorruptObjectError (naming
 * `where`) for empty, absolute, `.`/`..` or empty components, and NUL bytes.
 */
export function checkBackupPath(name: string, where: string): string {
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  const bad = (why: string) =>
    new CorruptObjectError(
      `${where} holds an unsafe path ${quoteForMessage(name)}: ${why}`,
      'the backup is damaged or was not written by gcwal; restore another backup',
    );
  if (trimmed === '') throw bad('empty');
  if (trimmed.includes('\0')) throw bad('contains a NUL byte');
  if (trimmed.startsWith('/')) throw bad('absolute');
  for (const part of trimmed.split('/')) {
    if (part === '..') throw bad('goes up with ..');
    if (part === '' || part === '.') throw bad('has an empty or . component');
  }
  return trimmed;
}

/** Largest tablespace OID: an Oid is an unsigned 32-bit number. */
const MAX_OID = 0xffff_ffff;

/** Whether `text` is a tablespace OID as PostgreSQL names pg_tblspc links: decimal, no sign, no leading zero, 1 to 2^32-1. */
export function isTablespaceOid(text: string): boolean {
  return /^[1-9][0-9]{0,9}$/.test(text) && Number(text) <= MAX_OID;
}

/**
 * Why `location` (a tablespace location recorded in a backup) is unsafe to
 * restore into, or undefined when it is an absolute, normalised path: no
 * `.`/`..` or empty components, no trailing slash, no NUL, not `/` itself.
 * It names a directory outside the data directory that restore would write
 * into, so nothing but the plain form PostgreSQL records is accepted.
 */
export function tablespaceLocationProblem(location: string): string | undefined {
  if (!location.startsWith('/')) return 'is not absolute';
  if (location.includes('\0')) return 'contains a NUL byte';
  if (location === '/') return 'is the root directory';
  const parts = location.slice(1).split('/');
  if (parts.includes('..')) return 'goes up with ..';
  if (parts.some((p) => p === '' || p === '.')) return 'is not normalised (an empty or . component, or a trailing slash)';
  return undefined;
}
