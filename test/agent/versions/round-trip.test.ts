/**
 * Every supported PostgreSQL major version through the installed CLI, one
 * round trip each (README.md, "Supported PostgreSQL versions"): WAL archived by the
 * server's own archiver with `gcwal wal-push` under a light concurrent load,
 * `backup-push` with that version's backup API, `backup-fetch --target-time`
 * and a start on the same version's binaries with exactly the rows committed
 * before the target, a promotion that archives on timeline 2, and the
 * pipeline's validation of that version's WAL and backup. The repository is
 * on the local stack (gs:// on the GCS emulator, keyless through the
 * metadata stand-in, one prefix per version), so the WAL and the backup go
 * through the agent's Cloud Storage path and are validated as the validate
 * function reads them; the full pipeline (Pub/Sub, functions-framework) is
 * test/functions/pipeline-e2e.test.ts's, not started here (its ~20 s start
 * once per version would not fit the suite's time). Serial: one version's
 * clusters at a time on a small CI machine.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { backupMetaKey, walFileNameFromKey } from '../../../core/layout.ts';
import { readRepositoryIdentity } from '../../../core/repository.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { validateBackup, validateWalObject } from '../../../core/validate/index.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { pgBinDirFor, SUPPORTED_PG_MAJORS } from '../../../local/testkit/pgbin.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { adoptStackEnv } from '../../helpers/stack-env.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let agent: InstalledAgent;
let work: TempDir;
let stack: LocalStack;

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('versions', { owner: 'postgres' });
  stack = await startLocalStack();
  adoptStackEnv(stack); // this process reads the bucket keylessly too, as the validate function does
});
test.after.always(async () => {
  await stack?.close();
  await work?.cleanup();
  await agent?.cleanup();
});

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function insertBatch(cluster: Cluster, batch: string, rows: number): Promise<void> {
  await cluster.query('INSERT INTO items (batch, payload) SELECT $1, repeat(md5(g::text), 4) FROM generate_series(1, $2) g', [batch, rows]);
}

async function waitForPausedAtTarget(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    const [row] = await cluster.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused');
    if (row.paused) return;
  }
  throw new Error(`recovery did not pause at its target:\n${await cluster.logTail()}`);
}

/** 17+: wait until the WAL summarizer has written a summary into pg_wal/summaries. */
async function waitForSummaries(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
    const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pg_available_wal_summaries()');
    if (Number(n) > 0) return;
  }
  throw new Error(`no WAL summary was written:\n${await cluster.logTail()}`);
}

for (const major of SUPPORTED_PG_MAJORS) {
  test.serial(`PostgreSQL ${major} archives, backs up, restores to a point in time, promotes to timeline 2 and passes validation`, async (t) => {
    const env = { ...stack.env, GCWAL_REPO: `gs://${stack.bucket}/pg${major}` };
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
    // 17+: WAL summaries on, so pg_wal/summaries holds files the backup must leave out (as pg_basebackup does).
    if (major >= 17) {
      await source.query('ALTER SYSTEM SET summarize_wal = on');
      await source.query('SELECT pg_reload_conf()');
    }

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
    // Some WAL after the switcher's last switch, so this switch completes a segment (a switch with nothing to switch names one still open).
    await source.query('CREATE TABLE IF NOT EXISTS wal_marks (n int); INSERT INTO wal_marks VALUES (1)');
    await source.waitForArchived(await source.switchWal(), 60_000);

    if (major >= 17) await waitForSummaries(source);
    const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env: { ...source.env, ...env } });
    t.is(pushed.code, 0, pushed.stderr);
    const backupName = pushed.stdout.trim().split('\n').pop()!;
    t.regex(backupName, /^base_00000001[0-9A-F]{16}$/);

    // B is committed before the target time, C after it.
    await insertBatch(source, 'B', 500);
    const [{ target }] = await source.query<{ target: string }>(
      "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS target",
    );
    await sleep(1100);
    await insertBatch(source, 'C', 300);
    await source.waitForArchived(await source.switchWal(), 60_000);
    const [{ failed }] = await source.query<{ failed: string }>('SELECT failed_count AS failed FROM pg_stat_archiver');
    t.is(Number(failed), 0, 'archive_command failed at least once');
    await source.stop();

    // Binaries of another major version would refuse the restored directory: refused before anything is written.
    const dest = path.join(work.path, `restore-${major}`);
    const other = major === 18 ? 17 : 18;
    const refused = await runGcwal(agent.command, ['backup-fetch', dest, 'LATEST', '--target-time', target, '--pg-bin', await pgBinDirFor(other)], {
      asUser: 'postgres',
      env,
    });
    t.is(refused.code, 2, refused.stderr);
    t.regex(refused.stderr, new RegExp(`backup ${backupName} is of postgresql ${major}\\.\\d+, but \\S+/postgres is postgresql ${other}`));
    t.false(existsSync(dest));
    const fetched = await runGcwal(
      agent.command,
      ['backup-fetch', dest, 'LATEST', '--target-time', target, '--gcwal-command', agent.command, '--pg-bin', await pgBinDirFor(major)],
      { asUser: 'postgres', env },
    );
    t.is(fetched.code, 0, fetched.stderr);
    // 17+'s WAL summaries directory restored empty (PostgreSQL would make it at start anyway, so looked at before).
    const summaries = path.join(dest, 'pg_wal', 'summaries');
    t.deepEqual(existsSync(summaries) ? await readdir(summaries) : undefined, major >= 17 ? [] : undefined);
    const restored = await startClusterFromDirectory(dest, { pgMajor: major, serverEnv });
    cleanups.push(() => restored.destroy());
    await waitForPausedAtTarget(restored);
    t.deepEqual(await counts(restored), { A: 12000, B: 500 }, 'the restore holds exactly the rows committed before the target');
    // 18's data checksums, on by default, kept.
    const [{ checksums }] = await restored.query<{ checksums: string }>("SELECT current_setting('data_checksums') AS checksums");
    t.is(checksums, major >= 18 ? 'on' : 'off');

    await restored.promote();
    await restored.waitForRecoveryEnd();
    await insertBatch(restored, 'D', 200);
    await restored.waitForArchived('00000002.history', 60_000);
    const lastOnTwo = await restored.switchWal();
    t.regex(lastOnTwo, /^00000002/);
    await restored.waitForArchived(lastOnTwo, 60_000);

    // What the pipeline's validate function runs on each object that lands, read from the bucket as it reads it.
    const storage = new GcsStorage(env.GCWAL_REPO, { endpoint: stack.emulator.url, metadataServer: { host: stack.metadata.host } });
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
    t.is(Math.floor((validated.backup?.pgVersionNum ?? 0) / 10000), major, 'the backup records the version it was taken from');
  });
}
