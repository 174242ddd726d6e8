import { AlreadyExistsError, ClusterMismatchError, CorruptObjectError, NotFoundError, RepositoryMissingError } from './errors.ts';
import { REPOSITORY_KEY } from './layout.ts';
import { readSmallObject, writeSmallObject } from './storage/objects.ts';
import type { CallOptions, Storage } from './storage/types.ts';

/** Which cluster a repository belongs to. Written once by gcwal repo-create; never rewritten. */
export interface RepositoryIdentity {
  format: 1;
  /** pg_control system identifier, decimal string */
  systemIdentifier: string;
  walSegmentSize: number;
  created: string;
}

/** The repository's identity, or undefined when it has none (never created). */
export async function readRepositoryIdentity(storage: Storage, options: CallOptions = {}): Promise<RepositoryIdentity | undefined> {
  // One request, not stat-then-read: wal-push pays for this on every segment.
  let body: Buffer;
  try {
    body = await readSmallObject(storage, REPOSITORY_KEY, { ...options, limit: 1024 * 1024 });
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  let parsed: Partial<RepositoryIdentity>;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CorruptObjectError(`${REPOSITORY_KEY} in ${storage.url} is not valid json`, 'restore it from a copy or point GCWAL_REPO at a fresh location');
  }
  if (parsed.format !== 1 || typeof parsed.systemIdentifier !== 'string' || typeof parsed.walSegmentSize !== 'number') {
    throw new CorruptObjectError(
      `${REPOSITORY_KEY} in ${storage.url} is not a gcwal repository identity`,
      'restore it from a copy or point GCWAL_REPO at a fresh location',
    );
  }
  return parsed as RepositoryIdentity;
}

/** The repository's identity; RepositoryMissingError when it has none. */
export async function requireRepositoryIdentity(
  storage: Storage,
  options: CallOptions & { read?: Promise<RepositoryIdentity | undefined> } = {},
): Promise<RepositoryIdentity> {
  const identity = await (options.read ?? readRepositoryIdentity(storage, options));
  if (!identity) throw new RepositoryMissingError(storage.url);
  return identity;
}

/**
 * The repository's identity, confirmed to be `cluster`'s: RepositoryMissingError
 * when it has none (never created: a push must not start a second archive),
 * ClusterMismatchError when it belongs to another cluster or segment size.
 * Never writes. `options.read`, when given, is a readRepositoryIdentity
 * already under way (started before the cluster was known).
 */
export async function requireRepositoryFor(
  storage: Storage,
  cluster: { systemIdentifier: string; walSegmentSize: number },
  options: CallOptions & { read?: Promise<RepositoryIdentity | undefined> } = {},
): Promise<RepositoryIdentity> {
  const identity = await requireRepositoryIdentity(storage, options);
  checkSameCluster(storage.url, identity, cluster);
  return identity;
}

/** ClusterMismatchError unless `identity` is `cluster`'s (system identifier and segment size). */
function checkSameCluster(url: string, identity: RepositoryIdentity, cluster: { systemIdentifier: string; walSegmentSize: number }): void {
  if (identity.systemIdentifier !== cluster.systemIdentifier) {
    throw new ClusterMismatchError(`repository ${url} belongs to cluster ${identity.systemIdentifier}, not to this cluster ${cluster.systemIdentifier}`);
  }
  if (identity.walSegmentSize !== cluster.walSegmentSize) {
    throw new ClusterMismatchError(
      `repository ${url} holds ${identity.walSegmentSize}-byte WAL segments, this cluster writes ${cluster.walSegmentSize}-byte ones`,
    );
  }
}

/**
 * Create the repository's identity for `cluster` (gcwal repo-create), or
 * confirm an existing one is this cluster's: idempotent for the same cluster,
 * ClusterMismatchError for another. Create-only, so two creations racing
 * agree on one identity. The only place a repository's identity is written;
 * the storage must be writable (a file:// root must exist, see
 * FileStorage.createRoot).
 */
export async function createRepositoryIdentity(
  storage: Storage,
  cluster: { systemIdentifier: string; walSegmentSize: number },
  options: CallOptions = {},
): Promise<RepositoryIdentity> {
  let identity = await readRepositoryIdentity(storage, options);
  if (!identity) {
    const fresh: RepositoryIdentity = {
      format: 1,
      systemIdentifier: cluster.systemIdentifier,
      walSegmentSize: cluster.walSegmentSize,
      created: new Date().toISOString(),
    };
    try {
      await writeSmallObject(storage, REPOSITORY_KEY, JSON.stringify(fresh, null, 2) + '\n', { ...options, contentType: 'application/json' });
      return fresh;
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      identity = await readRepositoryIdentity(storage, options);
      if (!identity) throw err;
    }
  }
  checkSameCluster(storage.url, identity, cluster);
  return identity;
}
