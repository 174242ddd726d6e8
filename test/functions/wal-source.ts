/**
 * Real WAL for the function tests: a throwaway cluster with 1 MiB segments
 * archiving with `cp` into a directory, from which a test pushes files to its
 * gs:// repository with the agent's own wal-push code.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pushWalFile } from '../../agent/wal/push.ts';
import { walObjectKey } from '../../core/layout.ts';
import { createRepositoryIdentity } from '../../core/repository.ts';
import type { ObjectInfo, Storage } from '../../core/storage/types.ts';
import { startCluster, type Cluster } from '../../local/testkit/cluster.ts';
import { makeTempDir, type TempDir } from '../../local/testkit/tmp.ts';

export interface WalSource {
  cluster: Cluster;
  /** where archive_command copies to */
  dir: TempDir;
  systemIdentifier: string;
  /** 1 MiB */
  segmentSize: number;
  /** close `count` more segments and wait until they are archived; resolves with their names */
  produce(count: number): Promise<string[]>;
  /** names of every archived file, sorted */
  archived(): Promise<string[]>;
  /** the archived file `name`, full path */
  file(name: string): string;
  stop(): Promise<void>;
}

/** Start a cluster whose archive_command copies into a fresh directory. */
export async function startWalSource(): Promise<WalSource> {
  const dir = await makeTempDir('functions-wal', { owner: 'postgres' });
  let cluster: Cluster;
  try {
    cluster = await startCluster({ archiveCommand: `cp %p ${dir.path}/%f`, walSegSizeMB: 1 });
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
  const [{ id }] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  await cluster.query('CREATE TABLE t (n int, pad text)');
  return {
    cluster,
    dir,
    systemIdentifier: id,
    segmentSize: 1024 * 1024,
    async produce(count) {
      const names: string[] = [];
      for (let i = 0; i < count; i++) {
        // pg_switch_wal does nothing on a segment without new WAL.
        await cluster.query("INSERT INTO t SELECT n, repeat('x', 50) FROM generate_series(1, 100) AS n");
        names.push(await cluster.switchWal());
      }
      if (names.length > 0) await cluster.waitForArchived(names.at(-1)!);
      return names;
    },
    async archived() {
      return (await readdir(dir.path)).sort();
    },
    file: (name) => path.join(dir.path, name),
    async stop() {
      await cluster.destroy();
      await dir.cleanup();
    },
  };
}

/**
 * Push archived file `name` with the agent's wal-push (lzo); resolves with
 * the object. The repository is created for the source's cluster first, as
 * gcwal repo-create does (idempotent), since no push creates one.
 */
export async function pushWal(storage: Storage, source: WalSource, name: string): Promise<ObjectInfo> {
  await createRepositoryIdentity(storage, { systemIdentifier: source.systemIdentifier, walSegmentSize: source.segmentSize });
  await pushWalFile(storage, source.file(name), { codec: 'lzo', level: undefined });
  return (await storage.stat(walObjectKey(name)))!;
}
