/**
 * `gcwal status`: over the pipeline's catalogue (never listing the
 * repository), and without one over a listing of a repository that real
 * PostgreSQL archived into and gcwal backed up.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { main } from '../../../agent/main.ts';
import type { StatusReport } from '../../../agent/status/report.ts';
import { emptyCatalogue, type Catalogue } from '../../../core/catalogue/types.ts';
import { CATALOGUE_KEY } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { formatLsn } from '../../../core/wal/lsn.ts';
import { parseWalSegmentName } from '../../../core/wal/name.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';
import { startCluster, type Cluster } from '../../../local/testkit/cluster.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { runRepoCreate } from '../../../local/testkit/repo.ts';

const dirs: string[] = [];
let agent: InstalledAgent | undefined;
let work: TempDir | undefined;
let cluster: Cluster | undefined;
test.after.always(async () => {
  await cluster?.destroy();
  await work?.cleanup();
  await agent?.cleanup();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function repository(name = 'repo'): Promise<{ url: string; storage: FileStorage }> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-status-cmd-'));
  dirs.push(dir);
  const url = pathToFileURL(join(dir, name)).href;
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

const SEG = 16 * 1024 * 1024;
const segment = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

/** A catalogue as the pipeline keeps it: segments 2–6 and 8 valid (7 missing), one valid backup, one open alert. */
function pipelineCatalogue(): Catalogue {
  const c = emptyCatalogue(new Date());
  c.systemIdentifier = '7300000000000000001';
  c.walSegmentSize = SEG;
  for (const n of [2, 3, 4, 5, 6, 8]) {
    c.wal[segment(n)] = {
      name: segment(n),
      generation: String(100 + n),
      size: 1000,
      created: minutesAgo(60 - n),
      state: 'valid',
      validated: minutesAgo(59 - n),
    };
  }
  c.lastWalArrival = c.wal[segment(8)].created;
  c.backups.base_000000010000000000000002 = {
    name: 'base_000000010000000000000002',
    generation: '7',
    state: 'valid',
    systemIdentifier: '7300000000000000001',
    pgVersionNum: 150010,
    timeline: 1,
    startLsn: '0/2000028',
    stopLsn: '0/2000138',
    startWalSegment: segment(2),
    stopWalSegment: segment(2),
    startTime: minutesAgo(59),
    stopTime: '2024-05-01T12:00:30.456Z',
    rawSize: 3 << 20,
    storedSize: 1 << 20,
    keys: ['backups/base_000000010000000000000002/backup.json'],
  };
  c.alerts['wal-gap:1:000000010000000000000007'] = {
    id: 'wal-gap:1:000000010000000000000007',
    kind: 'wal-gap',
    severity: 'CRITICAL',
    opened: minutesAgo(30),
    summary: 'wal segment 000000010000000000000007 is missing from the archive on timeline 1',
    details: { timeline: 1, missing: segment(7) },
  };
  return c;
}

async function writeCatalogue(storage: FileStorage, catalogue: Catalogue | string): Promise<void> {
  await writeSmallObject(storage, CATALOGUE_KEY, typeof catalogue === 'string' ? catalogue : JSON.stringify(catalogue));
}

test('with a catalogue, status reports its window, ranges, gaps, backups and open alerts, and never lists the repository', async (t) => {
  const { url, storage } = await repository();
  const catalogue = pipelineCatalogue();
  await writeCatalogue(storage, catalogue);
  // An object the catalogue does not know: a listing would show it.
  await storage.write(`wal/${segment(9)}`, Readable.from([Buffer.from('x')]));

  const { code, out, err } = await run(['status', '--json'], { GCWAL_REPO: url });
  t.is(code, 0, err);
  t.is(err, '', 'nothing on stderr when the catalogue exists');
  const report = JSON.parse(out) as StatusReport;
  t.is(report.source, 'catalogue');
  t.true(report.validated);
  t.deepEqual(report.catalogue, { location: `${url}/${CATALOGUE_KEY}`, exists: true, updated: catalogue.updated, generation: report.catalogue.generation });
  t.regex(report.catalogue.generation!, /^\d+$/);
  t.deepEqual(report.cluster, { systemIdentifier: '7300000000000000001', walSegmentSize: SEG });
  t.is(report.newestWal?.name, segment(8), "the newest WAL is the catalogue's, not the listed 09");
  t.true(report.newestWal!.ageSeconds >= 51 * 60 && report.newestWal!.ageSeconds <= 53 * 60);
  t.is(report.timelines.length, 1);
  const [tl] = report.timelines;
  t.deepEqual(tl.window.earliest, { lsn: '0/2000138', time: '2024-05-01T12:00:30.456Z', backup: 'base_000000010000000000000002' });
  t.deepEqual(tl.window.latest, { lsn: '0/7000000', time: catalogue.wal[segment(6)].created, segment: segment(6) }, 'the window ends where the WAL breaks');
  t.deepEqual(tl.walRanges, [
    { first: segment(2), last: segment(6), segments: 5, valid: 5, pending: 0, corrupt: 0, unvalidated: 0 },
    { first: segment(8), last: segment(8), segments: 1, valid: 1, pending: 0, corrupt: 0, unvalidated: 0 },
  ]);
  t.deepEqual(tl.gaps, [{ after: segment(6), missing: segment(7), count: 1, before: segment(8) }]);
  t.is(tl.newestWal?.name, segment(8));
  t.false(tl.historyMissing);
  t.deepEqual(
    report.backups.map((b) => [b.name, b.state, b.stopLsn]),
    [['base_000000010000000000000002', 'valid', '0/2000138']],
  );
  t.deepEqual(
    report.alerts.map((a) => [a.id, a.severity]),
    [['wal-gap:1:000000010000000000000007', 'CRITICAL']],
  );
  t.is(report.alertsSource, 'pipeline');
});

test('the json report has exactly the documented fields', async (t) => {
  const { url, storage } = await repository();
  await writeCatalogue(storage, pipelineCatalogue());
  const report = JSON.parse((await run(['status', '--json'], { GCWAL_REPO: url })).out) as Record<string, unknown>;
  t.deepEqual(Object.keys(report), [
    'format',
    'generatedAt',
    'repository',
    'source',
    'validated',
    'catalogue',
    'cluster',
    'newestWal',
    'timelines',
    'backups',
    'alerts',
    'alertsSource',
    'metrics',
  ]);
  t.deepEqual(Object.keys(report.metrics as object), [
    'archiveLagSeconds',
    'newestWalTime',
    'windowStart',
    'windowEnd',
    'windowStartAgeSeconds',
    'windowEndAgeSeconds',
    'lastValidBackupTime',
    'lastValidBackupAgeSeconds',
    'pendingObjects',
    'openAlerts',
    'openAlertsTotal',
  ]);
  t.like(report.metrics, {
    windowStart: '2024-05-01T12:00:30.456Z',
    lastValidBackupTime: '2024-05-01T12:00:30.456Z',
    pendingObjects: 0,
    openAlertsTotal: 1,
    openAlerts: { wal_gap: 1, corrupt_object: 0 },
  });
  const [tl] = report.timelines as Record<string, unknown>[];
  t.deepEqual(Object.keys(tl), ['timeline', 'historyMissing', 'window', 'restorePoints', 'newestWal', 'walRanges', 'gaps']);
  t.deepEqual(Object.keys(tl.window as object), ['earliest', 'latest', 'spans', 'lastCommit', 'lastCommitCertain']);
  const [span] = (tl.window as { spans: { from: object; to: object }[] }).spans;
  t.deepEqual(Object.keys(span), ['from', 'to', 'unvalidatedSegments']);
  t.deepEqual(Object.keys(span.from), ['lsn', 'time', 'backup']);
  t.deepEqual(Object.keys(span.to), ['lsn', 'time', 'segment']);
  t.deepEqual(Object.keys((report.backups as object[])[0]), [
    'name',
    'timeline',
    'startTime',
    'stopTime',
    'startLsn',
    'stopLsn',
    'startWalSegment',
    'stopWalSegment',
    'rawSize',
    'storedSize',
    'state',
    'problem',
  ]);
  t.deepEqual(Object.keys((report.alerts as object[])[0]), ['id', 'kind', 'severity', 'summary', 'opened', 'details']);
  t.deepEqual(Object.keys(report.newestWal as object), ['name', 'created', 'ageSeconds']);
  t.is(report.format, 1);
});

test('the text report shows the window, the gap, the backup and the alert', async (t) => {
  const { url, storage } = await repository();
  await writeCatalogue(storage, pipelineCatalogue());
  const { code, out } = await run(['status'], { GCWAL_REPO: url });
  t.is(code, 0);
  t.regex(out, /^repository {3}file:\/\//m);
  t.regex(out, /^catalogue {4}file:\/\/.*catalogue\/catalogue\.json, updated /m);
  t.regex(out, /^newest wal {3}000000010000000000000008, archived .* \(5[123] min ago\)$/m);
  t.regex(out, /^timeline 1$/m);
  t.regex(out, /^ {2}restorable {3}from 0\/2000138 at 2024-05-01 12:00:30\.456Z \(end of backup base_000000010000000000000002\)$/m);
  t.regex(out, /^ {15}to {3}0\/7000000 at about .* \(end of 000000010000000000000006\)$/m);
  t.regex(out, /^ {2}gaps {9}000000010000000000000007 missing, after 000000010000000000000006, before 000000010000000000000008$/m);
  t.regex(out, /^ {2}base_000000010000000000000002 +1 +2024-05-01 12:00:30Z +0\/2000138 +1\.0 MiB +valid$/m);
  t.regex(out, /^alerts \(open in the pipeline\)\n {2}CRITICAL wal-gap, since /m);
});

test('a catalogue in GCWAL_CATALOGUE_REPO is read from there', async (t) => {
  const { url } = await repository();
  const other = await repository('catalogue');
  await writeCatalogue(other.storage, pipelineCatalogue());
  const { code, out, err } = await run(['status', '--json'], { GCWAL_REPO: url, GCWAL_CATALOGUE_REPO: other.url });
  t.is(code, 0, err);
  const report = JSON.parse(out) as StatusReport;
  t.is(report.source, 'catalogue');
  t.is(report.catalogue.location, `${other.url}/${CATALOGUE_KEY}`);
  t.is(report.repository, url);
  t.is(report.backups.length, 1);
});

test('a repository that was never created is an error (exit 13), not an empty report', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-status-cmd-'));
  dirs.push(dir);
  const { code, out, err } = await run(['status', '--json'], { GCWAL_REPO: pathToFileURL(join(dir, 'typo')).href });
  t.is(code, 13, err);
  t.is(out, '');
  t.regex(err, /has no gcwal\.json.*gcwal repo-create/);
});

test('a damaged catalogue exits 6 instead of falling back to a listing', async (t) => {
  const { url, storage } = await repository();
  await writeCatalogue(storage, '{"format": 1, "wal": [');
  const { code, out, err } = await run(['status'], { GCWAL_REPO: url });
  t.is(code, 6);
  t.is(out, '');
  t.regex(err, /^gcwal: error: catalogue file:\/\/.* is not valid json/);
});

const usage: [string, string[], Record<string, string>, RegExp][] = [
  ['an argument', ['status', 'now'], {}, /status takes 0 arguments, got 1/],
  ['an unknown option', ['status', '--window'], {}, /unknown option '--window'/],
  ['no repository', ['status'], { GCWAL_REPO: '' }, /GCWAL_REPO/],
  ['a malformed catalogue repository', ['status'], { GCWAL_CATALOGUE_REPO: 'catalogue-bucket' }, /GCWAL_CATALOGUE_REPO "catalogue-bucket" is not/],
  ['a negative gap grace', ['status', '--gap-grace-minutes=-1'], {}, /--gap-grace-minutes must be at least 0/],
];
for (const [title, argv, env, message] of usage) {
  test(`status with ${title} is a usage error`, async (t) => {
    const { url } = await repository();
    const { code, err } = await run(argv, { GCWAL_REPO: url, ...env });
    t.is(code, 2, err);
    t.regex(err, message);
  });
}

test('without a catalogue, status lists a repository PostgreSQL archived into and shows the window from the backup to the last archived segment, unvalidated', async (t) => {
  agent = await installAgent();
  work = await makeTempDir('status', { owner: 'postgres' });
  const repo = `file://${join(work.path, 'repo')}`;
  const env = { GCWAL_REPO: repo };
  cluster = await startCluster({ archiveCommand: `${agent.command} wal-push %p`, serverEnv: env });
  await runRepoCreate(agent.command, cluster, env);
  await cluster.query('CREATE TABLE t (id serial, pad text)');
  await cluster.query("INSERT INTO t (pad) SELECT repeat('x', 200) FROM generate_series(1, 2000)");
  await cluster.waitForArchived(await cluster.switchWal());

  const pushed = await runGcwal(agent.command, ['backup-push', cluster.pgdata], { asUser: 'postgres', env: { ...cluster.env, ...env } });
  t.is(pushed.code, 0, pushed.stderr);
  const listed = JSON.parse((await runGcwal(agent.command, ['backup-list', '--json'], { env })).stdout) as {
    name: string;
    stopLsn: string;
    stopTime: string;
  }[];
  t.is(listed.length, 1);
  await cluster.query("INSERT INTO t (pad) SELECT repeat('y', 200) FROM generate_series(1, 2000)");
  const last = await cluster.switchWal();
  await cluster.waitForArchived(last);

  const json = await runGcwal(agent.command, ['status', '--json'], { asUser: 'postgres', env });
  t.is(json.code, 0, json.stderr);
  t.regex(json.stderr, /no catalogue at file:\/\/.*\/catalogue\/catalogue\.json .*listing .* instead: nothing in it is validated/);
  const report = JSON.parse(json.stdout) as StatusReport;
  t.is(report.source, 'listing');
  t.false(report.validated);
  t.false(report.catalogue.exists);
  const [{ system }] = await cluster.query<{ system: string }>('SELECT system_identifier::text AS system FROM pg_control_system()');
  t.deepEqual(report.cluster, { systemIdentifier: system, walSegmentSize: SEG });
  t.is(report.timelines.length, 1);
  const [tl] = report.timelines;
  t.deepEqual(tl.window.earliest, { lsn: listed[0].stopLsn, time: listed[0].stopTime, backup: listed[0].name });
  t.is(tl.window.latest?.segment, last, 'the window reaches the end of the last archived segment');
  t.is(tl.window.latest?.lsn, formatLsn((parseWalSegmentName(last, SEG).segNo + 1n) * BigInt(SEG)));
  t.is(report.newestWal?.name, last);
  t.true(report.newestWal!.ageSeconds < 120);
  t.deepEqual(tl.gaps, []);
  t.is(tl.walRanges.length, 1);
  t.is(tl.walRanges[0].last, last);
  t.is(tl.walRanges[0].unvalidated, tl.walRanges[0].segments);
  t.is(tl.walRanges[0].valid, 0);
  t.deepEqual(
    report.backups.map((b) => [b.name, b.state]),
    [[listed[0].name, 'unvalidated']],
  );
  t.deepEqual(report.alerts, [], 'a fresh archive with a fresh backup has nothing to alert on');
  t.is(report.alertsSource, 'evaluated');

  const text = await runGcwal(agent.command, ['status'], { asUser: 'postgres', env });
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^source {7}a listing of the repository: nothing below is validated/m);
  t.regex(text.stdout, new RegExp(`^ {2}restorable {3}from ${listed[0].stopLsn} at .* \\(end of backup ${listed[0].name}\\)$`, 'm'));
  t.regex(text.stdout, new RegExp(`^ {2}${listed[0].name} .* unvalidated$`, 'm'));
});
