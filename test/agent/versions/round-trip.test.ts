/**
 * Every supported PostgreSQL major version through the installed CLI, one
 * round trip each (README, "Supported versions"): WAL archived by the
 * server's own archiver with `gcwal wal-push` under a light concurrent load,
 * `backup-push` with that version's backup API, `backup-fetch --target-time`
 * and a start on the same version's binaries with exactly the rows committed
 * before the target, a promotion that archives on timeline 2, and the
 * pipeline's validation of that version's WAL and backup. Serial: one
 * version's clusters at a time on a small CI machine.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { backupMetaKey, walFileNameFromKey } from '../../../core/layout.ts';
import { readRepositoryIdentity } from '../../../core/repository.ts';
import { openStorage } from '../../../core/storage/open.ts';
import { validateBackup, validateWalObject } from '../../../core/validate/index.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../helpers/cluster.ts';
import { installAgent, type InstalledAgent } from '../../helpers/install.ts';
import { pgBinDirFor, SUPPORTED_PG_MAJORS } from '../../helpers/pgbin.ts';
import { runRepoCreate } from '../../helpers/repo.ts';
import { runGcwal } from '../../helpers/run.ts';
import { makeTempDir, type TempDir } from '../../helpers/tmp.ts';

let agent: InstalledAgent;
let work: TempDir;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('versions', { owner: 'postgres' });
});
test.after.always(async () => {
  await work?.cleanup();
  await agent?.cleanup();
});

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function insertBatch(cluster: Cluster, batch: string, rows: number): Promise<void> {
  await cluster.query("INSERT INTO items (batch, payload) SELECT $1, repeat(md5(g::text), 4) FROM generate_series(1, $2) g", [batch, rows]);
}

async function waitForPausedAtTarget(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    const [row] = await cluster.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused');
    if (row.paused) return;
  }
  throw new Error(`recovery did not pause at its target:\n${await cluster.logTail()}`);
}

for (const major of SUPPORTED_PG_MAJORS) {
  test.serial(`PostgreSQL ${major} archives, backs up, restores to a point in time, promotes to timeline 2 and passes validation`, async (t) => {
    const env = { GCWAL_REPO: `file://${path.join(work.path, `repo-${major}`)}` };
    const serverEnv = env;
    const cleanups: (() => Promise<unknown>)[] = [];
    t.teardown(async () => {
      for (const c of cleanups.reverse()) await c().catch(() => {});
    });

    const source = await startCluster({ pgMajor: major, walSegSizeMB: 1, archiveCommand: `${agent.command} wal-push %p`, serverEnv });
    cleanups.push(() => source.destroy());
    const [{ version }] = await source.query<{ version: string }>("SELECT current_setting('server_version_num') AS version");
    t.is(Math.floor(Number(version) / 10000), major);
    await runRepoCreate(agent.command, source, env);
    await source.query('CREATE TABLE items (id bigserial PRIMARY KEY, batch text NOT NULL, payload text)');

    // Light load: two writers and WAL switches at the same time.
    let writing = true;
    const writers = Array.from({ length: 2 }, async () => {
      for (let i = 0; i < 3; i++) await insertBatch(source, 'A', 2000);
    });
    const switcher = (async () => {
      while (writing) {
        await source.switchWal();
        await sleep(150);
      }
    })();
    await Promise.all(writers).finally(() => (writing = false));
    await switcher;
    await source.waitForArchived(await source.switchWal(), 60_000);

    const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
    t.is(pushed.code, 0, pushed.stderr);
    const backupName = pushed.stdout.trim().split('\n').pop()!;
    t.regex(backupName, /^base_00000001[0-9A-F]{16}$/);

    // B is committed before the target time, C after it.
    await insertBatch(source, 'B', 500);
    const [{ target }] = await source.query<{ target: string }>("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target");
    await sleep(1100);
    await insertBatch(source, 'C', 300);
    await source.waitForArchived(await source.switchWal(), 60_000);
    const [{ failed }] = await source.query<{ failed: string }>('SELECT failed_count AS failed FROM pg_stat_archiver');
    t.is(Number(failed), 0, 'archive_command failed at least once');
    await source.stop();

    // Binaries of another major version would refuse the restored directory: refused before anything is written.
    const dest = path.join(work.path, `restore-${major}`);
    const other = major === 18 ? 17 : 18;
    const refused = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--target-time', target, '--pg-bin', await pgBinDirFor(other)], { asUser: 'postgres', env });
    t.is(refused.code, 2, refused.stderr);
    t.regex(refused.stderr, new RegExp(`backup ${backupName} is of postgresql ${major}\\.\\d+, but \\S+/postgres is postgresql ${other}`));
    t.false(existsSync(dest));
    const fetched = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--target-time', target, '--gcwal-command', agent.command, '--pg-bin', await pgBinDirFor(major)], { asUser: 'postgres', env });
    t.is(fetched.code, 0, fetched.stderr);
    const restored = await startClusterFromDirectory(dest, { pgMajor: major, serverEnv });
    cleanups.push(() => restored.destroy());
    await waitForPausedAtTarget(restored);
    t.deepEqual(await counts(restored), { A: 12000, B: 500 }, 'the restore holds exactly the rows committed before the target');
    // Version-specific files and defaults: 17's WAL summaries directory kept (empty), 18's data checksums on by default.
    t.is(existsSync(path.join(dest, 'pg_wal', 'summaries')), major >= 17);
    const [{ checksums }] = await restored.query<{ checksums: string }>("SELECT current_setting('data_checksums') AS checksums");
    t.is(checksums, major >= 18 ? 'on' : 'off');

    await restored.promote();
    await restored.waitForRecoveryEnd();
    await insertBatch(restored, 'D', 200);
    await restored.waitForArchived('00000002.history', 60_000);
    const lastOnTwo = await restored.switchWal();
    t.regex(lastOnTwo, /^00000002/);
    await restored.waitForArchived(lastOnTwo, 60_000);

    // What the pipeline's validate function runs on each object that lands.
    const storage = await openStorage(env.GCWAL_REPO);
    const identity = (await readRepositoryIdentity(storage))!;
    const expect = { systemIdentifier: identity.systemIdentifier, walSegmentSize: identity.walSegmentSize };
    const kinds = new Set<string>();
    for await (const info of storage.list('wal/')) {
      const result = await validateWalObject(storage, info, expect);
      t.true(result.ok, `${info.key}: ${result.problem}`);
      if (result.details?.kind === 'segment') t.is(result.details.pgMajor, major, info.key);
      kinds.add(`${result.details?.kind ?? ''}:${walFileNameFromKey(info.key)!.slice(0, 8)}`);
    }
    t.true(kinds.has('segment:00000001') && kinds.has('segment:00000002') && kinds.has('history:00000002'), [...kinds].join(' '));
    const metaInfo = (await storage.stat(backupMetaKey(backupName)))!;
    const validated = await validateBackup(storage, metaInfo, expect);
    t.true(validated.ok, validated.problem);
    t.is(Math.floor((validated.backup?.pgVersionNum ?? 0) / 10000), major, "the backup records the version it was taken from");
  });
}
