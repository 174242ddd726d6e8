import test from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chainSources, checkParent, chooseParent, majorOf, NoParentBackupError, resolveChain } from '../../../core/backup/chain.ts';
import { serializeBackupMeta, type BackupMeta, type ManifestEntry } from '../../../core/backup/meta.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { backupMetaKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { writeSmallObject } from '../../../core/storage/objects.ts';
import { parseLsn } from '../../../core/wal/lsn.ts';

const SYSID = '7300000000000000001';

/** A backup of timeline `timeline` starting in segment `seg` and stopping in the same segment. */
function backup(seg: number, overrides: Partial<BackupMeta> = {}): BackupMeta {
  const timeline = overrides.timeline ?? 1;
  const segment = `${timeline.toString(16).toUpperCase().padStart(8, '0')}000000000000${seg.toString(16).toUpperCase().padStart(4, '0')}`;
  const name = overrides.name ?? `base_${segment}`;
  const startLsn = `0/${(seg * 0x1000000 + 0x28).toString(16).toUpperCase()}`;
  return {
    format: 1,
    name,
    systemIdentifier: SYSID,
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: 16 * 1024 * 1024,
    timeline,
    startLsn,
    stopLsn: `0/${(seg * 0x1000000 + 0x138).toString(16).toUpperCase()}`,
    startWalSegment: segment,
    stopWalSegment: segment,
    startTime: `2024-05-01T10:${String(seg).padStart(2, '0')}:00.000Z`,
    stopTime: `2024-05-01T10:${String(seg).padStart(2, '0')}:30.000Z`,
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

/** An incremental backup in segment `seg` on `parent`. */
function incremental(seg: number, parent: BackupMeta, overrides: Partial<BackupMeta> = {}): BackupMeta {
  return backup(seg, { format: 2, parent: parent.name, full: parent.full ?? parent.name, ...overrides });
}

const start = (seg: number, overrides: Partial<Parameters<typeof chooseParent>[1]> = {}) => ({
  systemIdentifier: SYSID,
  pgVersionNum: 150012,
  walSegmentSize: 16 * 1024 * 1024,
  timeline: 1,
  startLsn: parseLsn(`0/${(seg * 0x1000000 + 0x28).toString(16).toUpperCase()}`),
  ...overrides,
});

test('the major version is server_version_num divided by 10000', (t) => {
  t.is(majorOf(150010), 15);
  t.is(majorOf(180001), 18);
});

test('the parent is the newest backup of the same cluster, version and timeline that stopped by the start', (t) => {
  const full = backup(2);
  const inc = incremental(4, full);
  const later = backup(9);
  t.is(chooseParent([full, inc, later], start(6)).name, inc.name);
  t.is(chooseParent([full, inc], start(6)).name, inc.name);
  t.is(chooseParent([full, inc, backup(5, { systemIdentifier: '7300000000000000002' })], start(6)).name, inc.name);
  t.is(chooseParent([full, backup(5, { pgVersionNum: 160001 })], start(6)).name, full.name);
  t.is(chooseParent([full, backup(5, { walSegmentSize: 1024 * 1024 })], start(6)).name, full.name);
});

test('a backup of an earlier timeline is a parent only when the history says this timeline branched off after it', (t) => {
  const full = backup(2);
  const forked = backup(5);
  // Timeline 2 branched off timeline 1 at 0/4000000: the backup in segment 5 is on the abandoned part.
  const history = [{ parentTimeline: 1, switchLsn: parseLsn('0/4000000'), reason: '' }];
  t.is(chooseParent([full, forked], start(6, { timeline: 2 }), history).name, full.name);
  t.throws(() => chooseParent([full, forked], start(6, { timeline: 2 })), { instanceOf: NoParentBackupError });
});

test('without a backup that can be the parent, an incremental backup is refused with a stable code', (t) => {
  const none = t.throws(() => chooseParent([], start(6)), { instanceOf: NoParentBackupError });
  t.is(none!.code, 'no_parent_backup');
  t.is(none!.exitCode, 2);
  t.regex(none!.message, /^no backup of cluster 7300000000000000001 in the repository/);
  t.regex(none!.hint, /take a full backup first/);
  const other = t.throws(() => chooseParent([backup(9)], start(6)), { instanceOf: NoParentBackupError });
  t.regex(other!.message, /^none of the 1 backups of cluster 7300000000000000001 can be the parent of an incremental backup on timeline 1/);
});

const parentFaults: [string, Partial<BackupMeta>, RegExp][] = [
  ['another cluster', { systemIdentifier: '7300000000000000002' }, /is of cluster 7300000000000000002, not 7300000000000000001$/],
  ['another segment size', { walSegmentSize: 1024 * 1024 }, /has 1048576-byte wal segments, not 16777216$/],
  ['another major version', { pgVersionNum: 160001, pgVersion: '16.1' }, /is of postgresql 16\.1, not 15\.10$/],
  ['a stop after the child starts', { stopLsn: '0/9000000' }, /stops at 0\/9000000, after base_000000010000000000000006 starts at 0\/6000028$/],
  [
    'another chain',
    { name: 'base_000000010000000000000003' },
    /belongs to the chain of base_000000010000000000000003, but base_000000010000000000000006 names/,
  ],
];
for (const [what, change, message] of parentFaults) {
  test(`a parent of ${what} breaks the chain`, (t) => {
    const full = backup(2);
    const child = incremental(6, full);
    t.notThrows(() => checkParent(child, full));
    t.throws(() => checkParent(child, { ...full, ...change }), { instanceOf: CorruptObjectError, message });
  });
}

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-chain-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo'));
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
const store = (s: FileStorage, m: BackupMeta) => writeSmallObject(s, backupMetaKey(m.name), serializeBackupMeta(m));

test("a chain is read from the last backup back to its full backup, oldest first; a full backup's chain is itself", async (t) => {
  const s = await fresh();
  const full = backup(2);
  const inc1 = incremental(4, full);
  const inc2 = incremental(6, inc1);
  for (const m of [full, inc1, inc2]) await store(s, m);
  t.deepEqual(
    (await resolveChain(s, inc2)).map((m) => m.name),
    [full.name, inc1.name, inc2.name],
  );
  t.deepEqual(
    (await resolveChain(s, full)).map((m) => m.name),
    [full.name],
  );
});

test('a chain whose middle backup is missing or damaged is refused, naming it', async (t) => {
  const s = await fresh();
  const full = backup(2);
  const inc1 = incremental(4, full);
  const inc2 = incremental(6, inc1);
  await store(s, full);
  await store(s, inc2);
  await t.throwsAsync(resolveChain(s, inc2), {
    instanceOf: CorruptObjectError,
    message: `backup ${inc1.name}, the parent of ${inc2.name} in the chain of ${inc2.name}, is missing from the repository`,
  });
  await writeSmallObject(s, backupMetaKey(inc1.name), '{ damaged');
  await t.throwsAsync(resolveChain(s, inc2), {
    instanceOf: CorruptObjectError,
    message: new RegExp(`^backup ${inc1.name}, the parent of ${inc2.name} in the chain of ${inc2.name}, is damaged: backup metadata .* is not valid json$`),
  });
});

const file = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  path,
  type: 'file',
  size: 10,
  crc32c: 'AAAAAA==',
  mode: 0o600,
  mtime: '2024-05-01T00:00:00.000Z',
  ...extra,
});

test('each older backup of a chain supplies the files the last one names it for', (t) => {
  const last = new Map([
    ['a', file('a', { ref: 'base_full' })],
    ['b', file('b', { ref: 'base_inc1' })],
    ['c', file('c', { part: 0 })],
  ]);
  const older = new Map([
    ['base_full', new Map([['a', file('a', { part: 3 })]])],
    ['base_inc1', new Map([['b', file('b', { part: 0 })]])],
  ]);
  t.deepEqual(
    chainSources('base_inc2', last, older),
    new Map([
      ['base_full', new Set(['a'])],
      ['base_inc1', new Set(['b'])],
    ]),
  );
});

const sourceFaults: [string, ManifestEntry, Map<string, ManifestEntry>, RegExp][] = [
  [
    'a backup outside the chain',
    file('a', { ref: 'base_other' }),
    new Map(),
    /file a of backup base_last is stored in backup base_other, which is not in its chain$/,
  ],
  ['a backup that does not store it', file('a', { ref: 'base_full' }), new Map(), /stored in backup base_full, whose manifest does not store it$/],
  ['a backup that refers on again', file('a', { ref: 'base_full' }), new Map([['a', file('a', { ref: 'base_x' })]]), /whose manifest does not store it$/],
  [
    'a backup storing another checksum',
    file('a', { ref: 'base_full' }),
    new Map([['a', file('a', { part: 0, crc32c: 'AQIDBA==' })]]),
    /whose manifest records 10 bytes with crc32c AQIDBA==, not 10 bytes with AAAAAA==$/,
  ],
];
for (const [what, entry, holder, message] of sourceFaults) {
  test(`a file stored in ${what} breaks the chain`, (t) => {
    t.throws(() => chainSources('base_last', new Map([['a', entry]]), new Map([['base_full', holder]])), { instanceOf: CorruptObjectError, message });
  });
}
