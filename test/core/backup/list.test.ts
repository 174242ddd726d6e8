import test from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { backupSummary, compareBackups, LATEST, listBackups, resolveBackup } from '../../../core/backup/list.ts';
import { serializeBackupMeta, type BackupMeta } from '../../../core/backup/meta.ts';
import { CorruptObjectError, type GcwalError, NotFoundError } from '../../../core/errors.ts';
import { backupMetaKey, backupPartKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-list-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo')); // the repository's directory, as repo-create makes it
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Metadata of a backup starting in segment `seg` (of timeline 1 unless overridden) at `time`. */
function meta(seg: number, time: string, overrides: Partial<BackupMeta> = {}): BackupMeta {
  const timeline = overrides.timeline ?? 1;
  const segment = `${timeline.toString(16).toUpperCase().padStart(8, '0')}000000000000${seg.toString(16).toUpperCase().padStart(4, '0')}`;
  const name = overrides.name ?? `base_${segment}`;
  const startLsn = overrides.startLsn ?? `0/${(seg * 0x1000000 + 0x28).toString(16).toUpperCase()}`;
  return {
    format: 1,
    name,
    systemIdentifier: '7300000000000000001',
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: 16 * 1024 * 1024,
    timeline,
    startLsn,
    stopLsn: `0/${(seg * 0x1000000 + 0x138).toString(16).toUpperCase()}`,
    startWalSegment: segment,
    stopWalSegment: segment,
    startTime: time,
    stopTime: time.replace(/:00\.000Z$/, ':30.000Z'),
    rawSize: 1000,
    storedSize: 400,
    fileCount: 10,
    codec: 'lzo',
    parts: [],
    tablespaces: [],
    backupLabel: `START WAL LOCATION: ${startLsn} (file ${segment})\n`,
    tablespaceMap: '',
    manifest: { key: `backups/${name}/manifest.jsonl`, storedSize: 0, storedCrc32c: 'AAAAAA==', entries: 0 },
    gcwalVersion: '0.1.0',
    ...overrides,
  };
}

async function store(storage: FileStorage, m: BackupMeta): Promise<void> {
  await writeSmallObject(storage, backupMetaKey(m.name), serializeBackupMeta(m));
}

test('an empty repository lists no backups', async (t) => {
  t.deepEqual(await listBackups(await fresh()), []);
});

test('backups are listed oldest first whatever their names', async (t) => {
  const s = await fresh();
  const a = meta(2, '2024-05-01T10:00:00.000Z');
  const b = meta(9, '2024-05-02T10:00:00.000Z');
  // After a point-in-time recovery: a newer timeline can start at a lower LSN.
  const c = meta(5, '2024-05-03T10:00:00.000Z', { name: 'base_000000020000000000000005', timeline: 2 });
  for (const m of [c, b, a]) await store(s, m);
  t.deepEqual(
    (await listBackups(s)).map((m) => m.name),
    [a.name, b.name, c.name],
  );
});

test('a backup folder without backup.json is invisible', async (t) => {
  const s = await fresh();
  await store(s, meta(2, '2024-05-01T10:00:00.000Z'));
  await writeSmallObject(s, backupPartKey('base_000000010000000000000007', 0), 'orphan part of a failed backup');
  t.deepEqual(
    (await listBackups(s)).map((m) => m.name),
    ['base_000000010000000000000002'],
  );
  await t.throwsAsync(resolveBackup(s, 'base_000000010000000000000007'), { instanceOf: NotFoundError });
});

test('LATEST resolves to the newest complete backup, in any case', async (t) => {
  const s = await fresh();
  await store(s, meta(2, '2024-05-01T10:00:00.000Z'));
  await store(s, meta(4, '2024-05-01T11:00:00.000Z'));
  await writeSmallObject(s, backupPartKey('base_000000010000000000000009', 0), 'a backup still running');
  t.is((await resolveBackup(s, LATEST)).name, 'base_000000010000000000000004');
  t.is((await resolveBackup(s, 'latest')).name, 'base_000000010000000000000004');
});

test('a backup is resolved by its name', async (t) => {
  const s = await fresh();
  const m = meta(2, '2024-05-01T10:00:00.000Z');
  await store(s, m);
  await store(s, meta(4, '2024-05-01T11:00:00.000Z'));
  t.deepEqual(await resolveBackup(s, m.name), m);
});

const unknown: [string, string][] = [
  ['a name not in the repository', 'base_000000010000000000000042'],
  ['a name that is not a backup name', '../gcwal.json'],
  ['LATEST in an empty repository', LATEST],
];
for (const [what, name] of unknown) {
  test(`${what} is not found, with a hint`, async (t) => {
    const err = await t.throwsAsync(resolveBackup(await fresh(), name), { instanceOf: NotFoundError });
    t.is(err!.code, 'not_found');
    t.regex(err!.hint, name === LATEST ? /backup-push/ : /backup-list/);
  });
}

test('a suffixed second backup of the same segment sorts after the first', async (t) => {
  const s = await fresh();
  const first = meta(2, '2024-05-01T10:00:00.000Z');
  const second = meta(2, '2024-05-01T10:00:00.000Z', { name: `${first.name}_02000160`, startLsn: '0/2000160', stopLsn: '0/2000200' });
  await store(s, second);
  await store(s, first);
  t.deepEqual(
    (await listBackups(s)).map((m) => m.name),
    [first.name, second.name],
  );
  t.is((await resolveBackup(s, LATEST)).name, second.name);
});

test('a damaged backup.json fails the listing unless the caller takes it', async (t) => {
  const s = await fresh();
  await store(s, meta(2, '2024-05-01T10:00:00.000Z'));
  await writeSmallObject(s, backupMetaKey('base_000000010000000000000003'), '{ not json');
  await t.throwsAsync(listBackups(s), { instanceOf: CorruptObjectError });
  const invalid: string[] = [];
  const listed = await listBackups(s, undefined, { onInvalid: (name, err: GcwalError) => invalid.push(`${name}: ${err.code}`) });
  t.deepEqual(
    listed.map((m) => m.name),
    ['base_000000010000000000000002'],
  );
  t.deepEqual(invalid, ['base_000000010000000000000003: corrupt']);
});

test('a backup.json copied into another backup folder is refused', async (t) => {
  const s = await fresh();
  const m = meta(2, '2024-05-01T10:00:00.000Z');
  await writeSmallObject(s, backupMetaKey('base_000000010000000000000005'), serializeBackupMeta(m));
  await t.throwsAsync(resolveBackup(s, 'base_000000010000000000000005'), { instanceOf: CorruptObjectError });
});

test('backups with the same start time are ordered by start LSN', (t) => {
  const a = meta(2, '2024-05-01T10:00:00.000Z', { startLsn: '0/2000028' });
  const b = meta(2, '2024-05-01T10:00:00.000Z', { startLsn: '0/10000028', name: 'base_000000010000000000000010' });
  t.true(compareBackups(a, b) < 0);
  t.true(compareBackups(b, a) > 0);
  t.is(compareBackups(a, a), 0);
});

test('the summary has exactly the documented fields, in order', (t) => {
  const m = meta(2, '2024-05-01T10:00:00.000Z');
  t.deepEqual(Object.keys(backupSummary(m)), [
    'name',
    'startTime',
    'stopTime',
    'timeline',
    'startLsn',
    'stopLsn',
    'startWalSegment',
    'stopWalSegment',
    'rawSize',
    'storedSize',
    'fileCount',
    'pgVersion',
    'systemIdentifier',
  ]);
  t.is(backupSummary(m).systemIdentifier, '7300000000000000001');
});
