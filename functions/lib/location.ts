import { UsageError } from '../../core/errors.ts';
import { parseGsUrl } from '../../core/storage/gcs/storage.ts';
import type { RepositoryLocation } from './storage-event.ts';

/**
 * The bucket and key prefix of the watched repository. Storage events exist
 * only for gs:// repositories; throws UsageError for anything else.
 */
export function repositoryLocation(repo: string): RepositoryLocation {
  if (!repo.startsWith('gs://'))
    throw new UsageError(`the functions watch a gs:// repository, not ${repo}`, 'set GCWAL_REPO to the bucket the triggers watch, e.g. gs://my-bucket/prod-db');
  return parseGsUrl(repo);
}
