/**
 * The restored cluster finds gcwal: backup-fetch writes restore_command with
 * the absolute path of the gcwal that ran it, as it was run, so a server
 * whose PATH holds no gcwal recovers. Real PostgreSQL; gcwal installed in a
 * directory on no PATH and run by its path, as the postgres user. How $0
 * becomes that path (a relative one, a PATH lookup) is tested in
 * test/agent/self-command.test.ts and test/agent/wal/launcher.test.ts.
 */
import test from 'ava';
import { readFile, mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { quoteConfigValue, restoreCommand } from '../../../core/restore/recovery-config.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { exec } from '../../../local/testkit/exec.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

/** The restored server's PATH: the system's, where no gcwal is installed. */
const SERVER_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

let agent: InstalledAgent;
let work: TempDir;
let source: Cluster;
let repo: string;
const cleanups: (() => Promise<unknown>)[] = [];

test.before(async () => {
  agent = await installAgent();
  work = await makeTempDir('backup-fetch', { owner: 'postgres' });
  repo = `file://${path.join(work.path, 'repo')}`;
  // Archiving starts once the repository exists (the archiver would otherwise back off for a minute).
  source = await startCluster({ walSegSizeMB: 1, serverEnv: { GCWAL_REPO: repo } });
  const env = { ...source.env, GCWAL_REPO: repo };
  const created = await runGcwal(agent.command, ['repo-create'], { asUser: 'postgres', env });
  if (created.code !== 0) throw new Error(`repo-create: ${created.stderr}`);
  await source.query(`ALTER SYSTEM SET archive_command = '${agent.command} wal-push %p'`);
  await source.query('SELECT pg_reload_conf()');
  await source.query('CREATE TABLE rows_kept AS SELECT generate_series(1, 1000) AS n');
  const pushed = await runGcwal(agent.command, ['backup-push', source.pgdata], { asUser: 'postgres', env });
  if (pushed.code !== 0) throw new Error(`backup-push: ${pushed.stderr}`);
  // After the backup: only WAL fetched by restore_command brings these back.
  await source.query('INSERT INTO rows_kept SELECT generate_series(1001, 1500)');
  await source.waitForArchived(await source.switchWal(), 60_000);
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await source?.destroy();
  await work?.cleanup();
  await agent?.cleanup();
});

/** The restore_command line backup-fetch wrote into `dest`. */
async function restoreCommandLine(dest: string): Promise<string | undefined> {
  return (await readFile(path.join(dest, 'postgresql.auto.conf'), 'utf8')).split('\n').find((line) => line.startsWith('restore_command = '));
}

test('restored by a gcwal run by its path from a directory on no PATH, the server (PATH without gcwal) recovers with every row', async (t) => {
  t.not((await exec('sh', ['-c', 'command -v gcwal'], { env: { PATH: SERVER_PATH } })).code, 0, "the premise: no gcwal on the server's PATH");
  // A link named with a space and a quote, to the install: restore_command must name the link, quoted.
  const bin = path.join(work.path, "opt/gc'wal bin");
  await mkdir(bin, { recursive: true });
  const link = path.join(bin, 'gcwal');
  await symlink(agent.command, link);

  const dest = path.join(work.path, 'restored');
  const fetched = await runGcwal(link, ['backup-fetch', dest, 'LATEST', '--recovery'], { asUser: 'postgres', env: { GCWAL_REPO: repo, PATH: SERVER_PATH } });
  t.is(fetched.code, 0, fetched.stderr);
  t.is(await restoreCommandLine(dest), `restore_command = ${quoteConfigValue(restoreCommand(repo, link))}`);

  const restored = await startClusterFromDirectory(dest, { serverEnv: { PATH: SERVER_PATH }, settings: { archive_mode: 'off' } });
  cleanups.push(() => restored.destroy());
  await restored.waitForRecoveryEnd(120_000);
  t.deepEqual(await restored.query('SELECT count(*)::int AS n, max(n) AS top FROM rows_kept'), [{ n: 1500, top: 1500 }]);
});
