import { UsageError } from '../errors.ts';
import { FileStorage } from './file/storage.ts';
import type { GcsStorageOptions } from './gcs/storage.ts';
import type { Storage } from './types.ts';

export interface OpenOptions {
  gcs?: GcsStorageOptions;
}

/**
 * Open the repository at `url` (already validated by the config layer).
 * Connects lazily: opening never touches the network or disk, and the
 * Cloud Storage client library is loaded only for gs:// URLs.
 */
export async function openStorage(url: string, options: OpenOptions = {}): Promise<Storage> {
  if (url.startsWith('file://')) return new FileStorage(url);
  if (url.startsWith('gs://')) {
    const { GcsStorage } = await import('./gcs/storage.ts');
    return new GcsStorage(url, options.gcs);
  }
  throw new UsageError(`unsupported repository URL "${url}"`, 'use file:///absolute/path or gs://bucket/prefix');
}
