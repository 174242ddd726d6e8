import { RepositoryNotEmptyError } from '../../core/errors.ts';
import { createRepositoryIdentity, readRepositoryIdentity, type RepositoryIdentity } from '../../core/repository.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import type { CallOptions, Storage } from '../../core/storage/types.ts';

export interface CreateRepositoryOptions extends CallOptions {
  /** adopt a location that already holds objects but no gcwal.json (e.g. one whose gcwal.json was lost) */
  force?: boolean;
}

export interface CreateRepositoryResult {
  identity: RepositoryIdentity;
  /** created now, or found already belonging to this cluster */
  status: 'created' | 'exists';
  /** file:// only: the root directory was created now */
  createdDirectory: boolean;
}

/**
 * `gcwal repo-create`: give the repository at `storage` its identity for
 * `cluster`. An existing identity is compared (idempotent for the same
 * cluster, ClusterMismatchError for another). A location without one must be
 * empty unless `force`: objects there without gcwal.json are another tool's,
 * or an archive whose identity was lost, and adopting them is a decision for
 * a person, as pgBackRest's stanza-create refuses a non-empty repository. On
 * file:// the root directory is created (0700) when missing; on gs:// the
 * bucket must exist (a missing one is RepositoryMissingError from the driver).
 */
export async function createRepository(
  storage: Storage,
  cluster: { systemIdentifier: string; walSegmentSize: number },
  options: CreateRepositoryOptions = {},
): Promise<CreateRepositoryResult> {
  const signal = options.signal;
  const existing = await readRepositoryIdentity(storage, { signal });
  if (existing) {
    return { identity: await createRepositoryIdentity(storage, cluster, { signal }), status: 'exists', createdDirectory: false };
  }
  if (!options.force) {
    const found = await firstObject(storage, signal);
    if (found !== undefined) throw new RepositoryNotEmptyError(storage.url, found);
  }
  const createdDirectory = storage instanceof FileStorage ? await storage.createRoot() : false;
  const identity = await createRepositoryIdentity(storage, cluster, { signal });
  // Another repo-create may have won the race with another cluster's identity: createRepositoryIdentity compared it.
  return { identity, status: 'created', createdDirectory };
}

/** Something stored at the location (a key or a file name), or undefined when it is empty. */
async function firstObject(storage: Storage, signal?: AbortSignal): Promise<string | undefined> {
  if (storage instanceof FileStorage) {
    // The directory itself, not a walk: a mount point's lost+found is not readable by the postgres user.
    const entries = await storage.rootEntries();
    return entries?.sort()[0];
  }
  for await (const info of storage.list('', { signal })) return info.key;
  return undefined;
}
