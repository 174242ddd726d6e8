/**
 * Creating a repository as `gcwal repo-create` does, for tests whose
 * clusters archive into it: no push ever creates one (issue 11).
 */
import { createRepository } from '../../agent/repository/create.ts';
import { FileStorage } from '../../core/storage/file/storage.ts';
import { openStorage } from '../../core/storage/open.ts';
import type { GcsStorageOptions } from '../../core/storage/gcs/storage.ts';
import type { Storage } from '../../core/storage/types.ts';
import type { Cluster } from './cluster.ts';
import { execOk } from './exec.ts';
import { runGcwal } from './run.ts';
import { runningAsRoot } from './users.ts';

/** What a repository's identity records of a cluster. */
export interface ClusterIdentity {
  systemIdentifier: string;
  walSegmentSize: number;
}

/** The running cluster's system identifier and segment size, as repo-create reads them. */
export async function clusterIdentity(cluster: Pick<Cluster, 'query'>): Promise<ClusterIdentity> {
  const [row] = await cluster.query<{ id: string; seg: string }>(
    "SELECT system_identifier::text AS id, current_setting('wal_segment_size') AS seg FROM pg_control_system()",
  );
  const seg = /^(\d+)(MB|GB|kB)?$/.exec(row.seg);
  if (!seg) throw new Error(`unexpected wal_segment_size ${row.seg}`);
  const unit = seg[2] === 'GB' ? 1024 ** 3 : seg[2] === 'MB' ? 1024 ** 2 : seg[2] === 'kB' ? 1024 : 1;
  return { systemIdentifier: row.id, walSegmentSize: Number(seg[1]) * unit };
}

/**
 * Create the repository `storage` (or the URL) for `cluster` (a running
 * cluster or its identity), as gcwal repo-create does; on file://, when the
 * tests run as root, hand the directory to postgres so that archive_command
 * can write into it.
 */
export async function repoCreate(repo: Storage | string, cluster: Pick<Cluster, 'query'> | ClusterIdentity, gcs?: GcsStorageOptions): Promise<void> {
  const storage = typeof repo === 'string' ? await openStorage(repo, { gcs }) : repo;
  const identity = 'query' in cluster ? await clusterIdentity(cluster) : cluster;
  await createRepository(storage, identity);
  if (storage instanceof FileStorage && runningAsRoot()) await execOk('chown', ['-R', 'postgres:postgres', storage.root]);
}

/**
 * Run the installed `gcwal repo-create` as postgres against `cluster`, with
 * `env` (GCWAL_REPO and the storage settings); rejects with its stderr when
 * it fails. For tests that drive the installed CLI end to end.
 */
export async function runRepoCreate(command: string, cluster: Pick<Cluster, 'env'>, env: Readonly<Record<string, string>>): Promise<void> {
  const r = await runGcwal(command, ['repo-create'], { asUser: 'postgres', env: { ...cluster.env, ...env } });
  if (r.code !== 0) throw new Error(`gcwal repo-create exited ${r.code}: ${r.stderr.trim()}`);
}
