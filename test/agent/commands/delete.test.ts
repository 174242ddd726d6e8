/**
 * `gcwal delete`: bad policies, a plan over the pipeline's catalogue (its
 * states decide), and over a listing of a repository real PostgreSQL
 * archived into with two backups: a dry run changes nothing, --confirm
 * deletes exactly the older backup and the WAL only it needed, and
 * afterwards a point-in-time restore to the oldest point of the window works
 * while one before it is refused by backup-fetch.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { main } from '../../../agent/main.ts';
import type { DeleteReport } from '../../../agent/retention/report.ts';
import type { StatusReport } from '../../../agent/status/report.ts';
import { CATALOGUE_KEY } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { startCluster, startClusterFromDirectory, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { cataloguedRepository, segment } from './catalogued-repository.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';
import { walEntry } from '../../../core/catalogue/runs.ts';

const dirs: string[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function repository(): Promise<{ url: string; storage: FileStorage }> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-delete-cmd-'));
  dirs.push(dir);
  const url = pathToFileURL(join(dir, 'repo')).href;
  // Created as gcwal repo-create would: no command creates one.
  const storage = new FileStorage(url);
  await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier: '7300000000000000001', walSegmentSize: 16 * 1024 * 1024 });
  return { url, storage };
}

async function run(argv: string[], env: Record<string, string>) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(argv, env, { stdout, stderr, interactive: false, cwd: tmpdir(), signal: new AbortController().signal });
  return { code, out, err };
}

async function keys(storage: Storage): Promise<string[]> {
  const out: string[] = [];
  for (const prefix of ['wal/', 'backups/']) for await (const info of storage.list(prefix)) out.push(info.key);
  return out.sort();
}

const usage: [string, string[], Record<string, string>, RegExp][] = [
  ['no policy', ['delete'], {}, /delete needs a retention policy: --retain-full N or --retain-days D/],
  ['no policy but --confirm', ['delete', '--confirm'], {}, /delete needs a retention policy/],
  ['retain-full 0', ['delete', '--retain-full', '0'], {}, /--retain-full must be at least 1, not 0/],
  ['a retain-full that is not a number', ['delete', '--retain-full', 'two'], {}, /--retain-full must be an integer, not "two"/],
  ['fractional days', ['delete', '--retain-days', '1.5'], {}, /--retain-days must be an integer/],
  [
    'a WAL window shorter than the backup window',
    ['delete', '--retain-days', '7', '--wal-retain-days', '3'],
    {},
    /wal-retain-days 3 is shorter than retain-days 7/,
  ],
  ['a bad policy in the environment', ['delete'], { GCWAL_RETAIN_FULL: 'all' }, /GCWAL_RETAIN_FULL must be an integer/],
  ['an argument', ['delete', '--retain-full', '1', 'base_000000010000000000000002'], {}, /delete takes 0 arguments, got 1/],
  ['an unknown option', ['delete', '--retain-full', '1', '--force'], {}, /unknown option '--force'/],
];
for (const [title, argv, env, message] of usage) {
  test(`delete with ${title} is a usage error and touches nothing`, async (t) => {
    const { url, storage } = await repository();
    await storage.write('wal/000000010000000000000001', Readable.from([Buffer.from('x')]));
    const { code, out, err } = await run(argv, { GCWAL_REPO: url, ...env });
    t.is(code, 2, err);
    t.regex(err, message);
    t.is(out, '');
    t.deepEqual(await keys(storage), ['wal/000000010000000000000001']);
  });
}

/** The fixture written to a file:// repository, its catalogue included. */
async function catalogued(storage: Storage) {
  const catalogue = await cataloguedRepository(async (key, body) => writeSmallObject(storage, key, body));
  await writeSmallObject(storage, CATALOGUE_KEY, JSON.stringify(catalogue));
  return catalogue;
}

test("over the pipeline's catalogue, delete plans with its states: a dry run deletes nothing, --confirm exactly the plan, and a pending segment stays", async (t) => {
  const { url, storage } = await repository();
  await catalogued(storage);
  const before = await keys(storage);

  const dry = await run(['delete', '--retain-full', '1', '--json'], { GCWAL_REPO: url });
  t.is(dry.code, 0, dry.err);
  t.is(dry.err, '', 'no listing, so nothing to say on stderr');
  const planned = JSON.parse(dry.out) as DeleteReport;
  t.true(planned.dryRun);
  t.is(planned.source, 'catalogue');
  t.is(planned.agentValidation, null);
  t.deepEqual(planned.policy, { retainFull: 1, retainDays: null, walRetainDays: null });
  t.deepEqual(planned.plan.deletedBackups, ['base_000000010000000000000002']);
  t.deepEqual(planned.plan.keptBackups, ['base_000000010000000000000005']);
  const old = 'backups/base_000000010000000000000002/';
  t.deepEqual(
    planned.plan.delete.map((o) => o.key),
    [`${old}backup.json`, `${old}manifest.jsonl`, `${old}part_00000.tar`, `wal/${segment(1)}`, `wal/${segment(2)}`, `wal/${segment(4)}`],
  );
  t.is(planned.plan.keep.find((o) => o.key === `wal/${segment(3)}`)?.code, 'pending');
  t.is(planned.result, null);
  t.deepEqual(await keys(storage), before, 'a dry run deletes nothing');

  const text = await run(['delete', '--retain-full', '1'], { GCWAL_REPO: url });
  t.is(text.code, 0, text.err);
  t.regex(text.out, /^mode {9}dry run: nothing is deleted without --confirm$/m);
  t.regex(text.out, /^source {7}the pipeline's catalogue file:\/\/.*\/catalogue\/catalogue\.json$/m);
  t.regex(
    text.out,
    /^ {2}DELETE {2}base_000000010000000000000002 {2}superseded-backup: older than backup base_000000010000000000000005, the oldest kept restorable backup$/m,
  );
  t.regex(text.out, /^ {2}keep {4}base_000000010000000000000005 {2}retain-full: one of the newest 1 restorable backups$/m);
  t.regex(
    text.out,
    /^wal to delete\n {2}000000010000000000000001\.\.000000010000000000000002 {2}2 segments \(superseded-wal\)\n {2}000000010000000000000004 {2}1 segment \(superseded-wal\)$/m,
  );
  t.regex(text.out, /^to delete {4}6 objects \(.*\): 1 backup, 3 WAL files$/m);
  t.regex(text.out, /\ndry run: nothing was deleted; run again with --confirm to delete these 6 objects\n$/);
  t.deepEqual(await keys(storage), before);

  const confirmed = await run(['delete', '--retain-full', '1', '--confirm', '--json'], { GCWAL_REPO: url });
  t.is(confirmed.code, 0, confirmed.err);
  const done = JSON.parse(confirmed.out) as DeleteReport;
  t.false(done.dryRun);
  t.deepEqual(done.result?.skipped, []);
  t.is(done.result?.deleted, 6);
  const deleted = new Set(planned.plan.delete.map((o) => o.key));
  t.deepEqual(
    await keys(storage),
    before.filter((k) => !deleted.has(k)),
    'exactly the planned objects are gone',
  );
});

test('an object replaced after planning is skipped, not deleted', async (t) => {
  const { url, storage } = await repository();
  const catalogue = await catalogued(storage);
  // The catalogue still names generation N of segment 1; the repository now holds another.
  await storage.delete(`wal/${segment(1)}`);
  await writeSmallObject(storage, `wal/${segment(1)}`, 'a new object under the old name');
  t.not((await storage.stat(`wal/${segment(1)}`))!.generation, walEntry(catalogue, segment(1))!.generation);
  const { code, out, err } = await run(['delete', '--retain-full', '1', '--confirm'], { GCWAL_REPO: url });
  t.is(code, 0, err);
  t.regex(out, /^deleted 5 objects \(.*\)\n {2}skipped wal\/000000010000000000000001: wal\/000000010000000000000001 changed after planning$/m);
  t.truthy(await storage.stat(`wal/${segment(1)}`));
});

async function counts(cluster: Cluster): Promise<Record<string, number>> {
  const rows = await cluster.query<{ batch: string; n: string }>('SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch');
  return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
}

async function waitForPausedAtTarget(cluster: Cluster): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    const [row] = await cluster.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state').catch(() => [{ state: 'starting' }]);
    if (row.state === 'paused') return;
  }
  throw new Error(`recovery did not pause at its target:\n${await cluster.logTail()}`);
}

/** `2024-05-01T12:00:30.456Z` → `2024-05-01 12:00:30.456+00`, as --target-time takes it. */
const asTarget = (iso: string) => iso.replace('T', ' ').replace('Z', '+00');

test('with two backups and --retain-full 1, the agent validates the kept backup, deletes the older one and its WAL only, and PITR to the oldest point of the window works while one before it is refused', async (t) => {
  const agent: InstalledAgent = await installAgent();
  cleanups.push(() => agent.cleanup());
  const work: TempDir = await makeTempDir('delete', { owner: 'postgres' });
  cleanups.push(() => work.cleanup());
  const repo = `file://${join(work.path, 'repo')}`;
  const env = { GCWAL_REPO: repo };
  const gcwal = (args: string[], extra: Record<string, string> = {}) => runGcwal(agent.command, args, { asUser: 'postgres', env: { ...env, ...extra } });
  const source = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  await runRepoCreate(agent.command, source, env);
  cleanups.push(() => source.destroy());
  const insert = (batch: string) => source.query("INSERT INTO items (batch, pad) SELECT $1, repeat('x', 200) FROM generate_series(1, 3000)", [batch]);

  await source.query('CREATE TABLE items (id serial, batch text, pad text)');
  await insert('A');
  await source.waitForArchived(await source.switchWal());
  const first = await gcwal(['backup-push', source.pgdata], source.env);
  t.is(first.code, 0, first.stderr);
  await insert('B');
  await source.waitForArchived(await source.switchWal());
  const second = await gcwal(['backup-push', source.pgdata], source.env);
  t.is(second.code, 0, second.stderr);
  await insert('C');
  await source.waitForArchived(await source.switchWal());
  await source.stop();

  const backups = JSON.parse((await gcwal(['backup-list', '--json'])).stdout) as { name: string; startWalSegment: string; stopTime: string; stopLsn: string }[];
  t.is(backups.length, 2);
  const [older, newer] = backups;
  const storage = new FileStorage(repo);
  const before = await keys(storage);

  // The dry run: a plan, nothing deleted.
  const dry = await gcwal(['delete', '--retain-full', '1', '--json']);
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stderr, /no catalogue at .*listing .* instead/);
  t.regex(dry.stderr, new RegExp(`reading backup ${newer.name} to check it before keeping it`));
  const planned = JSON.parse(dry.stdout) as DeleteReport;
  t.true(planned.dryRun);
  t.is(planned.source, 'listing');
  t.deepEqual(planned.agentValidation?.backups, [{ name: newer.name, ok: true }], 'only the kept backup is read');
  t.true(planned.agentValidation!.walSegments >= 1);
  t.deepEqual(planned.agentValidation?.corruptWal, []);
  t.deepEqual(planned.plan.deletedBackups, [older.name]);
  t.deepEqual(planned.plan.keptBackups, [newer.name]);
  const toDelete = planned.plan.delete.map((o) => o.key);
  const expected = before.filter((k) => k.startsWith(`backups/${older.name}/`) || (k.startsWith('wal/') && k.slice(4, 28) < newer.startWalSegment));
  t.deepEqual([...toDelete].sort(), expected, "the older backup and the WAL before the newer backup's start, nothing else");
  t.true(toDelete.some((k) => k.startsWith('wal/')));
  t.deepEqual(await keys(storage), before);
  const text = await gcwal(['delete', '--retain-full', '1']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^mode {9}dry run: nothing is deleted without --confirm$/m);
  t.regex(text.stdout, new RegExp(`^read {9}backup ${newer.name}: valid$`, 'm'));
  t.regex(text.stdout, new RegExp(`^ {2}DELETE {2}${older.name} {2}superseded-backup`, 'm'));
  t.regex(text.stdout, /dry run: nothing was deleted; run again with --confirm/);
  t.deepEqual(await keys(storage), before);

  // A kept backup found damaged stops counting: the older one is read and kept instead.
  const partFile = join(work.path, 'repo', 'backups', newer.name, 'part_00000.tar');
  const original = await readFile(partFile);
  const damaged = Buffer.from(original);
  damaged[Math.floor(damaged.length / 2)] ^= 0xff;
  await writeFile(partFile, damaged);
  const wary = await gcwal(['delete', '--retain-full', '1', '--json']);
  await writeFile(partFile, original);
  t.is(wary.code, 0, wary.stderr);
  t.regex(wary.stderr, new RegExp(`backup ${newer.name} failed validation: `));
  const waryPlan = JSON.parse(wary.stdout) as DeleteReport;
  t.deepEqual(
    waryPlan.agentValidation?.backups.map((b) => [b.name, b.ok]),
    [
      [newer.name, false],
      [older.name, true],
    ],
  );
  t.deepEqual(waryPlan.plan.keptBackups, [older.name, newer.name]);
  t.deepEqual(waryPlan.plan.deletedBackups, []);
  t.is(waryPlan.plan.backups.find((b) => b.name === newer.name)?.code, 'newer-than-restorable');
  t.false(waryPlan.plan.delete.some((o) => o.key.startsWith('backups/')));
  t.deepEqual(await keys(storage), before);

  // --confirm deletes exactly the plan; a second run finds nothing more.
  const confirmed = await gcwal(['delete', '--retain-full', '1', '--confirm', '--json']);
  t.is(confirmed.code, 0, confirmed.stderr);
  const done = JSON.parse(confirmed.stdout) as DeleteReport;
  t.is(done.result?.deleted, toDelete.length);
  t.deepEqual(done.result?.skipped, []);
  t.deepEqual(
    await keys(storage),
    before.filter((k) => !toDelete.includes(k)),
  );
  const again = JSON.parse((await gcwal(['delete', '--retain-full', '1', '--confirm', '--json'])).stdout) as DeleteReport;
  t.deepEqual(again.plan.delete, []);
  t.deepEqual(
    (JSON.parse((await gcwal(['backup-list', '--json'])).stdout) as { name: string }[]).map((b) => b.name),
    [newer.name],
  );

  // The window now starts at the end of the newer backup.
  const status = JSON.parse((await gcwal(['status', '--json'])).stdout) as StatusReport;
  const earliest = status.timelines[0].window.earliest!;
  t.deepEqual(earliest, { lsn: newer.stopLsn, time: newer.stopTime, backup: newer.name });

  // A restore to that earliest point works...
  const dest = join(work.path, 'at-earliest');
  const fetched = await gcwal(['backup-fetch', dest, 'LATEST', '--target-time', asTarget(earliest.time), '--gcwal-command', agent.command]);
  t.is(fetched.code, 0, fetched.stderr);
  const restored = await startClusterFromDirectory(dest, { serverEnv: env });
  cleanups.push(() => restored.destroy());
  await waitForPausedAtTarget(restored);
  t.deepEqual(await counts(restored), { A: 3000, B: 3000 }, 'what was committed before the earliest point, nothing after');
  await restored.destroy();

  // ...and one a second before it is refused, before anything is written.
  const before1s = asTarget(new Date(Date.parse(earliest.time) - 1000).toISOString());
  for (const name of ['LATEST', newer.name]) {
    const dest2 = join(work.path, `before-${name}`);
    const refused = await gcwal(['backup-fetch', dest2, name, '--target-time', before1s, '--gcwal-command', agent.command]);
    t.is(refused.code, 2, refused.stderr);
    // One line of error (a warning that no pipeline catalogue could check the target may come before it).
    t.is(
      refused.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('gcwal: warning: ')).length,
      1,
      refused.stderr,
    );
    const point = asTarget(earliest.time);
    t.true(
      refused.stderr.includes(
        name === 'LATEST'
          ? `is before the earliest restorable point ${point} (the end of backup ${newer.name}, the oldest in ${repo})`
          : `is before the end of backup ${newer.name} (${point}), the earliest point it can restore to`,
      ),
      refused.stderr,
    );
    t.false(existsSync(dest2), 'nothing was written');
  }
});
