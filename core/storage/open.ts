import { UsageError } from '../errors.ts';
import { FileStorage } from './file.ts';
import type { Storage } from './types.ts';

/**
 * Open the repository at `url` (already validated by the config layer).
 * Connects lazily: opening never touches the network or disk.
 */
export async function openStorage(url: string): Promise<Storage> {
  if (url.startsWith('file://')) return new FileStorage(url);
  if (url.startsWith('gs://')) {
    throw new UsageError(`gs:// repositories are not supported by this build`, 'use a file:// repository');
  }
  throw new UsageError(`unsupported repository URL "${url}"`, 'use file:///absolute/path or gs://bucket/prefix');
}
