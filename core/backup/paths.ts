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
  const bad = (why: string) => new CorruptObjectError(`${where} holds an unsafe path ${quoteForMessage(name)}: ${why}`, 'the backup is damaged or was not written by gcwal; restore another backup');
  if (trimmed === '') throw bad('empty');
  if (trimmed.includes('\0')) throw bad('contains a NUL byte');
  if (trimmed.startsWith('/')) throw bad('absolute');
  for (const part of trimmed.split('/')) {
    if (part === '..') throw bad('goes up with ..');
    if (part === '' || part === '.') throw bad('has an empty or . component');
  }
  return trimmed;
}
