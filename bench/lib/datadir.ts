/**
 * Data directory helpers for the backup benchmark: its size, and proof that
 * a restored copy starts and holds the pgbench rows.
 */
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { startClusterFromDirectory } from '../../local/testkit/cluster.ts';
import { execOk } from '../../local/testkit/exec.ts';

/**
 * Bytes of the regular files under `pgdata`, leaving out pg_wal's contents
 * (neither gcwal nor pgBackRest copies them into an online backup): the
 * "raw" size throughput figures divide by.
 */
export async function dataDirBytes(pgdata: string): Promise<number> {
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (full !== path.join(pgdata, 'pg_wal')) await walk(full);
      } else if (entry.isFile()) {
        total += (await lstat(full).catch(() => ({ size: 0 }))).size;
      }
    }
  };
  await walk(pgdata);
  return total;
}

/** An empty directory for a restore, owned by postgres with mode 0700 (pgBackRest wants it to exist). */
export async function emptyRestoreDir(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  await execOk('chown', ['postgres:postgres', dir]);
}

/**
 * Start the restored `pgdata` (its recovery settings replay WAL from the
 * repository to the end of the backup and promote), wait until recovery
 * ends, and resolve with the number of rows in pgbench_accounts. Archiving
 * is switched off so the copy pushes nothing into the repositories. The
 * server is stopped and `pgdata` removed afterwards, whatever happens.
 */
export async function verifyRestore(pgdata: string): Promise<number> {
  try {
    const cluster = await startClusterFromDirectory(pgdata, { settings: { archive_mode: 'off' }, timeoutSeconds: 600 });
    try {
      await cluster.waitForRecoveryEnd(600_000);
      const [row] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_accounts');
      return Number(row.n);
    } finally {
      await cluster.destroy();
    }
  } finally {
    await rm(pgdata, { recursive: true, force: true });
  }
}
