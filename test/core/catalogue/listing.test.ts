import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serializeBackupMeta, type BackupMeta } from '../../../core/backup/meta.ts';
import { isPlaceholderBackup } from '../../../core/catalogue/apply.ts';
import { recoverableWindows } from '../../../core/catalogue/derive.ts';
import { buildCatalogueFromListing } from '../../../core/catalogue/listing.ts';
import { emptyCatalogue } from '../../../core/catalogue/types.ts';
import { backupManifestKey, backupMetaKey, backupPartKey, CATALOGUE_KEY, walObjectKey } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';
import { formatHistoryFile } from '../../../core/wal/history.ts';
import { lsnIn, seg, SEG } from './fixtures.ts';

const NOW = new Date('2024-05-01T12:00:00.000Z');
const SYSID = '7300000000000000001';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-listing-'));
  dirs.push(dir);
  const storage = new FileStorage(pathToFileURL(join(dir, 'repo')).href);
  await storage.createRoot();
  return storage;
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** backup.json of a backup on timeline 1 from segment 2 to 3 with one part. */
function meta(): BackupMeta {
  const name = `base_${seg(1, 2)}`;
  return {
    format: 1,
    name,
    systemIdentifier: SYSID,
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: SEG,
    timeline: 1,
    startLsn: lsnIn(2, 0x28),
    stopLsn: lsnIn(3, 0x138),
    startWalSegment: seg(1, 2),
    stopWalSegment: seg(1, 3),
    startTime: '2024-05-01T10:00:00.000Z',
    stopTime: '2024-05-01T10:05:00.000Z',
    rawSize: 1000,
    storedSize: 400,
    fileCount: 3,
    codec: 'none',
    parts: [{ key: backupPartKey(name, 0), rawSize: 1000, rawCrc32c: 'AAAAAA==', storedSize: 400, storedCrc32c: 'AAAAAA==', codec: 'none', files: 3 }],
    tablespaces: [],
    backupLabel: `START WAL LOCATION: ${lsnIn(2, 0x28)} (file ${seg(1, 2)})\n`,
    tablespaceMap: '',
    manifest: { key: backupManifestKey(name), storedSize: 10, storedCrc32c: 'AAAAAA==', entries: 3 },
    gcwalVersion: '0.1.0',
  };
}

test('buildCatalogueFromListing on an empty repository gives an empty catalogue', async (t) => {
  t.deepEqual(await buildCatalogueFromListing(await fresh(), { now: NOW }), emptyCatalogue(NOW));
});

test('buildCatalogueFromListing lists WAL, parts and backups pending, with generations, sizes and history lines', async (t) => {
  const storage = await fresh();
  await createRepositoryIdentity(storage, { systemIdentifier: SYSID, walSegmentSize: SEG });
  for (const n of [1, 2, 3, 4]) await writeSmallObject(storage, walObjectKey(seg(1, n)), Buffer.alloc(100 + n));
  await writeSmallObject(storage, walObjectKey(`${seg(1, 5)}.partial`), 'p');
  await writeSmallObject(
    storage,
    walObjectKey('00000002.history'),
    formatHistoryFile([{ parentTimeline: 1, switchLsn: BigInt(5 * SEG + 0x100), reason: 'no recovery target specified' }]),
  );
  await writeSmallObject(storage, walObjectKey('00000003.history'), 'this is not a history file');
  await writeSmallObject(storage, walObjectKey('junk.tmp'), 'x');
  await writeSmallObject(storage, CATALOGUE_KEY, '{}');
  const m = meta();
  await writeSmallObject(storage, m.parts[0].key, Buffer.alloc(400));
  await writeSmallObject(storage, m.manifest.key, 'manifest!!');
  await writeSmallObject(storage, backupMetaKey(m.name), serializeBackupMeta(m));
  await writeSmallObject(storage, backupPartKey(`base_${seg(1, 9)}`, 0), 'a backup still running');
  await writeSmallObject(storage, backupMetaKey(`base_${seg(1, 7)}`), '{ not json');

  const c = await buildCatalogueFromListing(storage, { now: NOW });
  t.is(c.systemIdentifier, SYSID);
  t.is(c.walSegmentSize, SEG);
  t.is(c.updated, NOW.toISOString());
  t.deepEqual(Object.keys(c.wal).sort(), ['00000002.history', '00000003.history', seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4), `${seg(1, 5)}.partial`].sort());
  const info = (await storage.stat(walObjectKey(seg(1, 3))))!;
  t.deepEqual(c.wal[seg(1, 3)], { name: seg(1, 3), generation: info.generation, size: 103, created: info.created.toISOString(), state: 'pending' });
  t.deepEqual(c.wal['00000002.history'].history, [{ parentTimeline: 1, switchLsn: lsnIn(5, 0x100) }]);
  t.is(c.wal['00000002.history'].state, 'pending');
  t.is(c.wal['00000003.history'].state, 'corrupt');
  t.regex(c.wal['00000003.history'].problem!, /history file of timeline 3 line 1 is malformed/);
  const newest = [...Object.values(c.wal)]
    .map((e) => e.created)
    .sort()
    .at(-1);
  t.is(c.lastWalArrival, newest);

  t.deepEqual(Object.keys(c.parts).sort(), [m.parts[0].key, backupPartKey(`base_${seg(1, 9)}`, 0)].sort());
  t.is(c.parts[m.parts[0].key].state, 'pending');
  t.is(c.parts[m.parts[0].key].size, 400);
  t.deepEqual(Object.keys(c.backups).sort(), [m.name, `base_${seg(1, 7)}`]);
  const b = c.backups[m.name];
  t.like(b, {
    name: m.name,
    state: 'pending',
    timeline: 1,
    startWalSegment: seg(1, 2),
    stopWalSegment: seg(1, 3),
    stopLsn: m.stopLsn,
    systemIdentifier: SYSID,
  });
  t.is(b.generation, (await storage.stat(backupMetaKey(m.name)))!.generation);
  t.deepEqual([...b.keys].sort(), [m.parts[0].key, m.manifest.key, backupMetaKey(m.name)].sort());
  const broken = c.backups[`base_${seg(1, 7)}`];
  t.is(broken.state, 'corrupt');
  t.true(isPlaceholderBackup(broken));
  t.regex(broken.problem!, /is not valid json/);

  // What an agent without the functions shows: the window, trusting what is not yet validated.
  const [w1] = recoverableWindows(c, { includePending: true });
  t.deepEqual([w1.timeline, w1.earliest?.backup, w1.latest?.segment, w1.latest?.lsn], [1, m.name, seg(1, 4), lsnIn(5, 0)]);
});
