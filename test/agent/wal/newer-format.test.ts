/**
 * WAL from a PostgreSQL newer than gcwal knows (a newer page magic, the
 * header otherwise consistent): pushWalFile archives it and says so, and the
 * two entries that archive it through the installed CLI, wal-push
 * (agent/wal/archive.ts) and the background wal-archiver
 * (agent/commands/wal-archiver.ts), warn once per pg_wal and leave the note
 * that says so there (agent/wal/newer-format.ts).
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { ARCHIVER_COMMAND, archiverDir, LOG_FILE } from '../../../agent/wal/archiver-control.ts';
import { newerWalNoteName, warnNewerWalOnce } from '../../../agent/wal/newer-format.ts';
import { pushWalFile } from '../../../agent/wal/push.ts';
import { ClusterMismatchError, InvalidInputError } from '../../../core/errors.ts';
import { walObjectKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { installAgent, type InstalledAgent } from '../../../local/testkit/install.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';
import { runGcwal } from '../../../local/testkit/run.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { syntheticSegment, type SyntheticHeader } from '../../core/wal/synthetic-segment.ts';

const MiB = 1024 * 1024;
const cluster = { systemIdentifier: '7400000000000000001', walSegmentSize: MiB };
const NEWER: SyntheticHeader = { magic: 0xd119, systemIdentifier: cluster.systemIdentifier, segmentSize: MiB };

let work: TempDir;
let agent: InstalledAgent;
let counter = 0;

test.before(async () => {
  [work, agent] = await Promise.all([makeTempDir('newer-wal'), installAgent()]);
});
test.after.always(async () => {
  await agent?.cleanup();
  await work?.cleanup();
});

/** A repository created for `cluster` and the pg_wal directory of a data directory of its own, holding segment 3 with `header`. */
async function setUp(header: SyntheticHeader, name = '000000010000000000000003'): Promise<{ storage: FileStorage; walDir: string; file: string }> {
  const n = ++counter;
  const storage = new FileStorage(pathToFileURL(path.join(work.path, `repo-${n}`)).href);
  await repoCreate(storage, cluster);
  const walDir = path.join(work.path, `data-${n}`, 'pg_wal');
  await mkdir(walDir, { recursive: true });
  const file = path.join(walDir, name);
  await writeFile(file, syntheticSegment(3n, header));
  return { storage, walDir, file };
}

test('a segment whose page magic is newer than gcwal knows is archived, and says so', async (t) => {
  const { storage, file } = await setUp(NEWER);
  const result = await pushWalFile(storage, file, { codec: 'lzo', level: undefined });
  t.is(result.status, 'archived');
  t.is(result.newerWalMagic, 0xd119);
  t.truthy(await storage.stat(walObjectKey('000000010000000000000003')));
});

test('the newer-WAL warning is given once per pg_wal, and again for another magic', async (t) => {
  const { walDir } = await setUp(NEWER);
  const warnings: string[] = [];
  for (const magic of [0xd119, 0xd119, 0xd11a]) await warnNewerWalOnce(walDir, magic, (m) => warnings.push(m));
  t.is(warnings.length, 2);
  t.regex(warnings[0], /^WAL page magic 0xD119 is newer than PostgreSQL 18's/);
  t.regex(warnings[1], /^WAL page magic 0xD11A /);
  t.deepEqual((await readdir(walDir)).filter((f) => f.startsWith('.')).sort(), ['.gcwal-newer-wal-D119', '.gcwal-newer-wal-D11A']);
});

test('an unknown magic older than the newest known is refused and nothing is stored', async (t) => {
  const { storage, file } = await setUp({ ...NEWER, magic: 0xd117 });
  await t.throwsAsync(pushWalFile(storage, file, { codec: 'lzo', level: undefined }), {
    instanceOf: InvalidInputError,
    message: /has unknown WAL page magic 0xD117$/,
  });
  t.is(await storage.stat(walObjectKey('000000010000000000000003')), undefined);
});

test('a newer magic is refused when the header disagrees with the name or the repository', async (t) => {
  const cases: [SyntheticHeader, RegExp, Function][] = [
    [{ ...NEWER, pageAddress: 2n * BigInt(MiB) }, /holds WAL from 0\/200000, but its name places it at 0\/300000$/, InvalidInputError],
    [{ ...NEWER, blockSize: 8193 }, /invalid WAL page size 8193$/, InvalidInputError],
    [{ ...NEWER, systemIdentifier: '7400000000000000002' }, /7400000000000000002/, ClusterMismatchError],
    [{ ...NEWER, segmentSize: 2 * MiB }, /./, ClusterMismatchError],
  ];
  for (const [header, message, instanceOf] of cases) {
    const { storage, file } = await setUp(header);
    await t.throwsAsync(pushWalFile(storage, file, { codec: 'lzo', level: undefined }), { instanceOf: instanceOf as new () => Error, message });
    t.is(await storage.stat(walObjectKey('000000010000000000000003')), undefined);
  }
});

/** The warning lines of gcwal's text log. */
const newerWarnings = (stderr: string) => stderr.split('\n').filter((l) => /^gcwal: warning: WAL page magic 0xD119 is newer than PostgreSQL 18's/.test(l));

test('wal-push archives a segment with a newer page magic, twice with exit 0, warning once and leaving its note in pg_wal', async (t) => {
  const { storage, walDir, file } = await setUp(NEWER);
  const dataDir = path.dirname(walDir);
  const warnings: string[] = [];
  for (const run of [1, 2]) {
    const r = await runGcwal(agent.command, ['wal-push', path.relative(dataDir, file)], { cwd: dataDir, env: { GCWAL_REPO: storage.url } });
    t.is(r.code, 0, `run ${run}: ${r.stderr}`);
    warnings.push(...newerWarnings(r.stderr));
  }
  // The second run met the object already there, as after a crash, and still went through the check.
  t.is(warnings.length, 1, warnings.join('\n'));
  t.true(existsSync(path.join(walDir, newerWalNoteName(0xd119))));
  t.truthy(await storage.stat(walObjectKey('000000010000000000000003')));
});

test('the background wal-archiver archives ready segments with a newer page magic, warning once in its log and leaving the note in pg_wal', async (t) => {
  const { storage, walDir } = await setUp(NEWER);
  const names = ['000000010000000000000003', '000000010000000000000004'];
  await writeFile(path.join(walDir, names[1]!), syntheticSegment(4n, NEWER));
  await mkdir(path.join(walDir, 'archive_status'));
  for (const name of names) await writeFile(path.join(walDir, 'archive_status', `${name}.ready`), '');
  // The archiver runs while the postmaster named here is alive: this test process stands in for it.
  const dataDir = path.dirname(walDir);
  await writeFile(path.join(dataDir, 'postmaster.pid'), `${process.pid}\n${dataDir}\n`);
  const run = runGcwal(agent.command, [ARCHIVER_COMMAND, 'pg_wal'], { cwd: dataDir, env: { GCWAL_REPO: storage.url } });
  let exited = false;
  void run.finally(() => (exited = true));
  for (;;) {
    const stored = await Promise.all(names.map((n) => storage.stat(walObjectKey(n))));
    if (stored.every(Boolean) || exited) break;
    await sleep(100);
  }
  // The postmaster "stops": the archiver exits at its next look.
  await rm(path.join(dataDir, 'postmaster.pid'));
  const r = await run;
  t.is(r.code, 0, r.stderr);
  for (const name of names) t.truthy(await storage.stat(walObjectKey(name)), name);
  const log = (await readFile(path.join(archiverDir(walDir), LOG_FILE), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { severity: string; message: string });
  t.is(log.filter((l) => l.message.startsWith('archived ')).length, 2, JSON.stringify(log));
  const warnings = log.filter((l) => l.severity === 'WARNING' && /^WAL page magic 0xD119 is newer than PostgreSQL 18's/.test(l.message));
  t.is(warnings.length, 1, JSON.stringify(log));
  t.true(existsSync(path.join(walDir, newerWalNoteName(0xd119))));
});
