import test from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { archiveModeOffError, describeArchiver, missingWal, waitForWal, walNotArchivedError } from '../../../agent/backup/archive-wait.ts';
import type { ArchiverStatus } from '../../../agent/backup/pg-backup.ts';
import { ExitCode } from '../../../core/errors.ts';
import { walObjectKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';

const dirs: string[] = [];
async function repository(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-archive-wait-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo'));
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const put = (storage: FileStorage, name: string) => writeSmallObject(storage, walObjectKey(name), 'wal');
const seg = (n: number, timeline = 1) => `${timeline.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

test('only the segments of the range that are stored count; other timelines, .partial and .backup files do not', async (t) => {
  const storage = await repository();
  const wanted = [seg(0x1e), seg(0x1f), seg(0x20), seg(0x21)];
  t.deepEqual(await missingWal(storage, wanted), wanted);
  await put(storage, seg(0x10));
  await put(storage, seg(0x1f));
  await put(storage, `${seg(0x20)}.partial`);
  await put(storage, `${seg(0x1e)}.00000028.backup`);
  await put(storage, seg(0x20, 2));
  await put(storage, seg(0x21));
  await put(storage, seg(0x22));
  t.deepEqual(await missingWal(storage, wanted), [seg(0x1e), seg(0x20)]);
  t.deepEqual(await missingWal(storage, []), []);
});

test('the wait ends as soon as the missing segments arrive', async (t) => {
  const storage = await repository();
  const wanted = [seg(3), seg(4)];
  await put(storage, seg(3));
  const seen: (readonly string[])[] = [];
  const missing = await waitForWal(storage, wanted, {
    timeoutMs: 120_000,
    // Archived only once the wait has begun.
    onWaiting: (m) => {
      seen.push(m);
      void put(storage, seg(4));
    },
  });
  t.deepEqual(missing, []);
  t.deepEqual(seen, [[seg(4)]]);
});

test('the wait gives up with what is still missing when nothing arrives', async (t) => {
  const storage = await repository();
  await put(storage, seg(7));
  t.deepEqual(await waitForWal(storage, [seg(7), seg(8), seg(9)], { timeoutMs: 300 }), [seg(8), seg(9)]);
});

test('nothing to wait for resolves at once, without a waiting notice', async (t) => {
  const storage = await repository();
  await put(storage, seg(5));
  let notified = false;
  t.deepEqual(await waitForWal(storage, [seg(5)], { timeoutMs: 120_000, onWaiting: () => (notified = true) }), []);
  t.false(notified);
});

test('an interrupt ends the wait', async (t) => {
  const storage = await repository();
  const abort = new AbortController();
  const waiting = waitForWal(storage, [seg(5)], { timeoutMs: 120_000, signal: abort.signal, onWaiting: () => abort.abort(new Error('SIGTERM')) });
  await t.throwsAsync(waiting, { name: 'AbortError' });
});

const failing: ArchiverStatus = {
  archivedCount: 3,
  lastArchivedWal: '000000010000000000000004',
  lastArchivedTime: new Date('2026-12-07T06:00:00Z'),
  failedCount: 12,
  lastFailedWal: '000000010000000000000005',
  lastFailedTime: new Date('2026-12-07T06:01:02.345Z'),
};

test('what pg_stat_archiver reports is told in a few words', (t) => {
  t.is(
    describeArchiver(failing),
    'pg_stat_archiver: last failed 000000010000000000000005 at 2026-12-07T06:01:02.345Z (12 failures), last archived 000000010000000000000004 at 2026-12-07T06:00:00.000Z',
  );
  t.is(
    describeArchiver({ ...failing, failedCount: 0, lastFailedWal: null, lastFailedTime: null }),
    'pg_stat_archiver: no failures, last archived 000000010000000000000004 at 2026-12-07T06:00:00.000Z',
  );
  t.is(
    describeArchiver({
      archivedCount: 0,
      lastArchivedWal: null,
      lastArchivedTime: null,
      failedCount: 1,
      lastFailedWal: '000000010000000000000001',
      lastFailedTime: null,
    }),
    'pg_stat_archiver: last failed 000000010000000000000001 (1 failure), nothing archived',
  );
  t.is(describeArchiver(undefined), 'pg_stat_archiver could not be read');
});

test("the timeout error names the first missing segment, the timeout and the archiver's last failure, with a hint for a primary, a standby that can reach its primary and one that cannot", (t) => {
  const primary = walNotArchivedError({
    backup: 'base_000000010000000000000005',
    missing: [seg(5), seg(6), seg(7)],
    timeoutSeconds: 60,
    archiver: failing,
    standby: false,
  });
  t.is(primary.exitCode, ExitCode.walNotArchived);
  t.is(primary.code, 'wal_not_archived');
  t.is(
    primary.message,
    `wal ${seg(5)} and 2 later segments that backup base_000000010000000000000005 needs is not in the repository: none of it arrived for 60 s; ${describeArchiver(failing)}; no backup was recorded`,
  );
  t.regex(primary.hint, /^check archive_command, .* raise GCWAL_ARCHIVE_TIMEOUT/);
  const standby = walNotArchivedError({ backup: 'b', missing: [seg(5)], timeoutSeconds: 1, archiver: undefined, standby: { primaryConninfo: false } });
  t.regex(standby.message, new RegExp(`^wal ${seg(5)} that backup b needs`));
  t.regex(
    standby.hint,
    /^on a standby the primary .* archives this wal, and the last segment only once the primary switches segments: set GCWAL_PRIMARY_CONNINFO so that backup-push switches it/,
  );
  // With the primary's connection the switch was made: the hint is about archiving, not switching.
  const switched = walNotArchivedError({ backup: 'b', missing: [seg(5)], timeoutSeconds: 1, archiver: undefined, standby: { primaryConninfo: true } });
  t.regex(switched.hint, /^on a standby the primary .* archives this wal: check its archive_command/);
  t.notRegex(switched.hint, /GCWAL_PRIMARY_CONNINFO/);
  t.is(archiveModeOffError('/tmp:5432').exitCode, ExitCode.walNotArchived);
  t.regex(archiveModeOffError('/tmp:5432').hint, /--no-archive-check/);
});
