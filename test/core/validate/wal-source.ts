/**
 * Real WAL files for the validation tests: a throwaway cluster archiving with
 * `cp` into a directory, a backup taken so PostgreSQL writes a backup history
 * file, then a restart in standby mode and a promotion, so it also writes a
 * timeline history file and leaves the old timeline's last segment as
 * `.partial`.
 */
import { readdir, writeFile, chown } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { postgresUser, runningAsRoot } from '../../../local/testkit/users.ts';

export interface WalSource {
  cluster: Cluster;
  dir: TempDir;
  systemIdentifier: string;
  segmentSize: number;
  /** full paths of archived segments of timeline 1, in WAL order */
  segments: string[];
  /** the first segment of timeline 2, whose header still says timeline 1 */
  firstOnTimeline2: string;
  history: string;
  partial: string;
  backupFile: string;
  cleanup(): Promise<void>;
}

/** Archive real WAL of every kind from a fresh cluster with `walSegSizeMB`-MiB segments. */
export async function makeWalSource(walSegSizeMB = 1): Promise<WalSource> {
  const dir = await makeTempDir('validate-wal', { owner: 'postgres' });
  const cluster = await startCluster({ archiveCommand: `cp %p ${dir.path}/%f`, walSegSizeMB });
  try {
    const [{ id }] = await cluster.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    await cluster.query("CREATE TABLE t AS SELECT n, repeat('x', 100) AS pad FROM generate_series(1, 20000) AS n");
    // A non-exclusive backup lives in one session; its stop writes the backup history file.
    const client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      await client.query("SELECT pg_backup_start('validate', true)");
      await client.query('INSERT INTO t SELECT n FROM generate_series(1, 100) AS n');
      await client.query('SELECT pg_backup_stop(true)');
    } finally {
      await client.end();
    }
    await cluster.waitForArchived(await cluster.switchWal());
    await cluster.stop();
    const signal = path.join(cluster.pgdata, 'standby.signal');
    await writeFile(signal, '');
    if (runningAsRoot()) {
      const pg = await postgresUser();
      await chown(signal, pg.uid, pg.gid);
    }
    await cluster.start();
    await cluster.promote();
    await cluster.waitForArchived('00000002.history');
    // The new timeline's first segment starts as a copy of the old one's, old page header included.
    const firstOnTimeline2 = await cluster.switchWal();
    await cluster.waitForArchived(firstOnTimeline2);
    const files = (await readdir(dir.path)).sort();
    const pick = (re: RegExp) => files.filter((f) => re.test(f)).map((f) => path.join(dir.path, f));
    return {
      cluster,
      dir,
      systemIdentifier: id,
      segmentSize: walSegSizeMB * 1024 * 1024,
      segments: pick(/^00000001[0-9A-F]{16}$/),
      firstOnTimeline2: path.join(dir.path, firstOnTimeline2),
      history: pick(/\.history$/)[0],
      partial: pick(/\.partial$/)[0],
      backupFile: pick(/\.backup$/)[0],
      cleanup: async () => {
        await cluster.destroy();
        await dir.cleanup();
      },
    };
  } catch (err) {
    await cluster.destroy();
    await dir.cleanup();
    throw err;
  }
}
