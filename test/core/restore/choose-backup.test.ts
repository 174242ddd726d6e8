import test, { type ExecutionContext } from 'ava';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { serializeBackupMeta, type BackupMeta } from '../../../core/backup/meta.ts';
import { ClusterMismatchError, NotFoundError, RepositoryMissingError, UsageError } from '../../../core/errors.ts';
import { backupManifestKey, backupMetaKey } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { checkTargetAfterBackup, chooseBackupForTarget, resolveBackupForTarget, targetTimeMicros } from '../../../core/restore/choose-backup.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { normalizeTargetTime, type RecoveryTarget } from '../../../core/restore/recovery-config.ts';

function backup(name: string, stopTime: string, stopLsn: string): BackupMeta {
  return { name, stopTime, stopLsn, startTime: stopTime, startLsn: stopLsn } as BackupMeta;
}

// Oldest first, as listBackups returns them.
const backups = [
  backup('base_000000010000000000000002', '2024-05-01T12:00:30.456Z', '0/2000138'),
  backup('base_000000010000000000000005', '2024-05-02T12:00:00.000Z', '0/5000100'),
  backup('base_000000010000000000000009', '2024-05-03T12:00:00.000Z', '0/9000100'),
];

const time = (text: string): RecoveryTarget => ({ kind: 'time', time: normalizeTargetTime(text) });
const lsn = (text: string): RecoveryTarget => ({ kind: 'lsn', lsn: text });

test('target times are compared to the microsecond, whatever their zone', (t) => {
  t.is(targetTimeMicros('2024-05-01 12:00:30.456+00:00'), BigInt(Date.parse('2024-05-01T12:00:30.456Z')) * 1000n);
  t.is(targetTimeMicros('2024-05-01 14:00:30.456789+02:00'), BigInt(Date.parse('2024-05-01T12:00:30.456Z')) * 1000n + 789n);
  t.is(targetTimeMicros('2024-05-01 08:30:00-03:30'), BigInt(Date.parse('2024-05-01T12:00:00Z')) * 1000n);
});

const choices: [string, RecoveryTarget | undefined, string][] = [
  ['no target takes the newest backup', undefined, 'base_000000010000000000000009'],
  ['an immediate target takes the newest backup', { kind: 'immediate' }, 'base_000000010000000000000009'],
  ['a named restore point takes the newest backup', { kind: 'name', name: 'before-upgrade' }, 'base_000000010000000000000009'],
  ['a time after every backup takes the newest', time('2024-05-04 00:00:00+00'), 'base_000000010000000000000009'],
  ['a time between two backups takes the older', time('2024-05-02 18:00:00+00'), 'base_000000010000000000000005'],
  ["a time exactly at a backup's end takes that backup", time('2024-05-02 12:00:00+00'), 'base_000000010000000000000005'],
  ["a time just before a backup's end takes the one before", time('2024-05-02 11:59:59.999999+00'), 'base_000000010000000000000002'],
  ["a time at the oldest backup's end, in another zone, takes it", time('2024-05-01 14:00:30.456+02'), 'base_000000010000000000000002'],
  ['an lsn between two backups takes the older', lsn('0/6000000'), 'base_000000010000000000000005'],
  ["an lsn at a backup's stop takes that backup", lsn('0/9000100'), 'base_000000010000000000000009'],
];
for (const [title, target, expected] of choices) {
  test(`LATEST: ${title}`, (t) => {
    t.is(chooseBackupForTarget(backups, target, 'file:///repo').name, expected);
  });
}

test("a time before every backup's end is refused, naming the earliest restorable point in a form --target-time takes", (t) => {
  const err = t.throws(() => chooseBackupForTarget(backups, time('2024-05-01 12:00:30.455+00'), 'file:///repo'), { instanceOf: UsageError });
  t.is(
    err.message,
    'recovery target time 2024-05-01 12:00:30.455+00:00 is before the earliest restorable point 2024-05-01 12:00:30.456+00 (the end of backup base_000000010000000000000002, the oldest in file:///repo)',
  );
  t.regex(err.hint, /choose a target at or after 2024-05-01 12:00:30\.456\+00; gcwal status shows the recoverable window/);
  t.is(err.exitCode, 2);
  t.notThrows(() => normalizeTargetTime('2024-05-01 12:00:30.456+00'));
});

test("an lsn before every backup's stop is refused with the earliest stop lsn", (t) => {
  t.throws(() => chooseBackupForTarget(backups, lsn('0/2000100'), 'file:///repo'), {
    instanceOf: UsageError,
    message: /recovery target lsn 0\/2000100 is before the earliest restorable point 0\/2000138 \(the end of backup base_000000010000000000000002/,
  });
});

test('the earliest point is the earliest end even when the backups are not ordered by it', (t) => {
  const odd = [backups[1], backups[0]];
  t.throws(() => chooseBackupForTarget(odd, time('2024-04-01 00:00:00+00'), 'file:///repo'), {
    message: /earliest restorable point 2024-05-01 12:00:30\.456\+00 \(the end of backup base_000000010000000000000002/,
  });
});

test('a named backup refuses a target before its own end and accepts one at or after it', (t) => {
  const b = backups[1];
  const err = t.throws(() => checkTargetAfterBackup(b, time('2024-05-02 11:00:00+00')), { instanceOf: UsageError });
  t.is(
    err.message,
    'recovery target time 2024-05-02 11:00:00+00:00 is before the end of backup base_000000010000000000000005 (2024-05-02 12:00:00.000+00), the earliest point it can restore to',
  );
  t.throws(() => checkTargetAfterBackup(b, lsn('0/5000000')), {
    instanceOf: UsageError,
    message: /lsn 0\/5000000 is before the end of backup base_000000010000000000000005 \(0\/5000100\)/,
  });
  t.notThrows(() => checkTargetAfterBackup(b, time('2024-05-02 12:00:00+00')));
  t.notThrows(() => checkTargetAfterBackup(b, lsn('0/5000100')));
  t.notThrows(() => checkTargetAfterBackup(b, undefined));
  t.notThrows(() => checkTargetAfterBackup(b, { kind: 'immediate' }));
});

const OURS = '7300000000000000001';
const PLANTED = '7399999999999999999';

/** backup.json of a backup of cluster `sysid` in segment `seg` (timeline 1) that ended at `stopTime`. */
function stored(sysid: string, seg: number, stopTime: string): BackupMeta {
  const segment = `0000000100000000000000${seg.toString(16).toUpperCase().padStart(2, '0')}`;
  const name = `base_${segment}`;
  const startLsn = `0/${seg.toString(16).toUpperCase()}000028`;
  return {
    format: 1,
    name,
    systemIdentifier: sysid,
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: 16 * 1024 * 1024,
    timeline: 1,
    startLsn,
    stopLsn: `0/${seg.toString(16).toUpperCase()}000100`,
    startWalSegment: segment,
    stopWalSegment: segment,
    startTime: stopTime.replace(/:\d\d\.\d{3}Z$/, ':00.000Z'),
    stopTime,
    rawSize: 0,
    storedSize: 0,
    fileCount: 0,
    codec: 'none',
    parts: [],
    tablespaces: [],
    backupLabel: `START WAL LOCATION: ${startLsn} (file ${segment})\n`,
    tablespaceMap: '',
    manifest: { key: backupManifestKey(name), storedSize: 0, storedCrc32c: 'AAAAAA==', entries: 0 },
    gcwalVersion: 'test',
  };
}

/** A repository of cluster OURS (unless `identity` is false) holding `backups`, written directly as anyone with object-create could. */
async function repository(t: ExecutionContext, backups: BackupMeta[], identity = true): Promise<FileStorage> {
  const dir = await makeTempDir('choose');
  t.teardown(dir.cleanup);
  await mkdir(path.join(dir.path, 'repo'));
  const storage = new FileStorage(pathToFileURL(path.join(dir.path, 'repo')).href);
  if (identity) await createRepositoryIdentity(storage, { systemIdentifier: OURS, walSegmentSize: 16 * 1024 * 1024 });
  for (const b of backups) await writeSmallObject(storage, backupMetaKey(b.name), serializeBackupMeta(b));
  return storage;
}

const own2 = stored(OURS, 2, '2024-05-01T12:00:30.000Z');
const own5 = stored(OURS, 5, '2024-05-02T12:00:30.000Z');
const planted9 = stored(PLANTED, 9, '2024-05-03T12:00:30.000Z');

test('LATEST skips a newer backup of another cluster planted in the repository', async (t) => {
  const storage = await repository(t, [own2, own5, planted9]);
  const chosen = await resolveBackupForTarget(storage, 'LATEST', undefined);
  t.is(chosen.meta.name, own5.name);
  t.deepEqual(chosen.otherClusters, [planted9.name]);
});

test("a target after every backup picks the newest of the repository's cluster, not another cluster's", async (t) => {
  const storage = await repository(t, [own2, own5, planted9]);
  t.is((await resolveBackupForTarget(storage, 'LATEST', time('2024-05-04 00:00:00+00'))).meta.name, own5.name);
  t.is((await resolveBackupForTarget(storage, 'LATEST', lsn('0/A000000'))).meta.name, own5.name);
});

test('a backup of another cluster asked for by name is refused with exit 4', async (t) => {
  const storage = await repository(t, [own2, planted9]);
  const err = await t.throwsAsync(resolveBackupForTarget(storage, planted9.name, undefined), { instanceOf: ClusterMismatchError });
  t.is(err!.message, `backup ${planted9.name} is of cluster ${PLANTED}, not of cluster ${OURS} that repository ${storage.url} belongs to`);
  t.is(err!.exitCode, 4);
});

test("a repository holding only another cluster's backups has no LATEST", async (t) => {
  const storage = await repository(t, [planted9]);
  const err = await t.throwsAsync(resolveBackupForTarget(storage, 'LATEST', undefined), { instanceOf: NotFoundError });
  t.is(err!.message, `no backups of cluster ${OURS} in ${storage.url} (1 of other clusters ignored)`);
});

test('a repository without gcwal.json chooses no backup at all', async (t) => {
  const storage = await repository(t, [own2], false);
  await t.throwsAsync(resolveBackupForTarget(storage, 'LATEST', undefined), { instanceOf: RepositoryMissingError });
  await t.throwsAsync(resolveBackupForTarget(storage, own2.name, undefined), { instanceOf: RepositoryMissingError });
});
