import test from 'ava';
import { isIncremental, parseBackupMeta, serializeBackupMeta, type BackupMeta } from '../../../core/backup/meta.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { backupManifestKey, backupMetaKey, backupPartKey } from '../../../core/layout.ts';

const NAME = 'base_000000010000000000000004';
const KEY = backupMetaKey(NAME);

/** backup.json as backup-push writes it: one part, one tablespace. */
function valid(): BackupMeta {
  return {
    format: 1,
    name: NAME,
    systemIdentifier: '7300000000000000001',
    pgVersionNum: 150010,
    pgVersion: '15.10',
    walSegmentSize: 16 * 1024 * 1024,
    timeline: 1,
    startLsn: '0/4000028',
    stopLsn: '0/5000100',
    startWalSegment: '000000010000000000000004',
    stopWalSegment: '000000010000000000000005',
    startTime: '2024-05-01T12:00:00.000Z',
    stopTime: '2024-05-01T12:00:05.000Z',
    rawSize: 1000,
    storedSize: 400,
    fileCount: 3,
    codec: 'lzo',
    parts: [{ key: backupPartKey(NAME, 0), rawSize: 1024, rawCrc32c: 'AAAAAA==', storedSize: 400, storedCrc32c: 'Ab+/9w==', codec: 'lzo', files: 3 }],
    tablespaces: [{ oid: '16385', location: '/srv/ts' }],
    backupLabel: 'START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\nCHECKPOINT LOCATION: 0/4000060\n',
    tablespaceMap: '16385 /srv/ts\n',
    manifest: { key: backupManifestKey(NAME), storedSize: 10, storedCrc32c: 'AAAAAA==', entries: 4 },
    gcwalVersion: '0.1.0',
  };
}

/** Parse `meta` (as JSON) as if stored at `key`. */
const parse = (meta: unknown, key = KEY) => parseBackupMeta(JSON.stringify(meta), key);

test('backup.json as backup-push writes it is read back unchanged', (t) => {
  t.deepEqual(parseBackupMeta(serializeBackupMeta(valid()), KEY), valid());
});

/** A change to valid metadata and the message (naming the field) it must be refused with. */
const damaged: [string, (m: Record<string, any>) => void, RegExp][] = [
  [
    'a field the format does not define',
    (m) => (m.restoreCommand = 'rm -rf /'),
    /^backup metadata backups\/base_000000010000000000000004\/backup\.json: restoreCommand is not a field of this format$/,
  ],
  ['a missing field', (m) => delete m.stopLsn, /: stopLsn is missing$/],
  ['a name that is not a backup name', (m) => (m.name = 'base_1\nrestore_command = x'), /: name is "base_1\\nrestore_command = x", not a backup name$/],
  ['a system identifier that is not decimal', (m) => (m.systemIdentifier = '0x1234'), /: systemIdentifier is "0x1234", not a system identifier/],
  ['a system identifier that is a number', (m) => (m.systemIdentifier = 7300000000000000001), /: systemIdentifier is 7300000000000000000, not a string$/],
  ['a system identifier above 64 bits', (m) => (m.systemIdentifier = '99999999999999999999'), /: systemIdentifier is above 2\^64-1$/],
  ['a server version out of range', (m) => (m.pgVersionNum = 15), /: pgVersionNum is 15, below 100000$/],
  ['a segment size that is not a power of two', (m) => (m.walSegmentSize = 3 * 1024 * 1024), /: walSegmentSize is 3145728, not a power of two/],
  ['timeline 0', (m) => (m.timeline = 0), /: timeline is 0, below 1$/],
  ['a fractional timeline', (m) => (m.timeline = 1.5), /: timeline is 1\.5, not an integer$/],
  ['a start lsn that does not parse', (m) => (m.startLsn = '0/4000028 '), /: startLsn is "0\/4000028 ", not an lsn$/],
  ['a stop lsn that does not parse', (m) => (m.stopLsn = 'end'), /: stopLsn is "end", not an lsn$/],
  ['a start after the stop', (m) => (m.startLsn = '0/6000000'), /: stopLsn is 0\/5000100, before startLsn 0\/6000000$/],
  ['a start segment that is not a segment name', (m) => (m.startWalSegment = '../../etc/passwd'), /: startWalSegment is not a segment name: /],
  [
    'a start segment not holding the start lsn',
    (m) => (m.startWalSegment = '000000010000000000000003'),
    /: startWalSegment is 000000010000000000000003, which does not hold startLsn 0\/4000028$/,
  ],
  [
    'a stop segment on another timeline',
    (m) => (m.stopWalSegment = '000000020000000000000005'),
    /: stopWalSegment is 000000020000000000000005, not on timeline 1$/,
  ],
  ['a start time that is not a time', (m) => (m.startTime = 'yesterday'), /: startTime is "yesterday", not an ISO time$/],
  [
    'a stop time before the start time',
    (m) => (m.stopTime = '2024-05-01T11:00:00.000Z'),
    /: stopTime is 2024-05-01T11:00:00\.000Z, before startTime 2024-05-01T12:00:00\.000Z$/,
  ],
  ['a negative raw size', (m) => (m.rawSize = -1), /: rawSize is -1, below 0$/],
  ['a file count that is a string', (m) => (m.fileCount = '3'), /: fileCount is "3", not an integer$/],
  ['an unknown codec', (m) => (m.codec = 'rot13'), /: codec is "rot13", not a codec gcwal knows/],
  ['parts that are not a list', (m) => (m.parts = {}), /: parts is an object, not a list$/],
  [
    'a part key of another backup',
    (m) => (m.parts[0].key = backupPartKey('base_000000010000000000000002', 0)),
    /: parts\[0\]\.key is "backups\/base_000000010000000000000002\/part_00000\.tar", not backups\/base_000000010000000000000004\/part_00000\.tar$/,
  ],
  ['a part with a negative stored size', (m) => (m.parts[0].storedSize = -400), /: parts\[0\]\.storedSize is -400, below 0$/],
  ['a part with an unknown field', (m) => (m.parts[0].path = '/etc'), /: parts\[0\]\.path is not a field of this format$/],
  ['a part checksum that is not base64', (m) => (m.parts[0].rawCrc32c = 'zz'), /: parts\[0\]\.rawCrc32c is "zz", not a base64 crc32c$/],
  ['a tablespace oid that is not decimal', (m) => (m.tablespaces[0].oid = '../../x'), /: tablespaces\[0\]\.oid is "\.\.\/\.\.\/x", not an oid \(decimal\)$/],
  ['a tablespace oid that is a number', (m) => (m.tablespaces[0].oid = 16385), /: tablespaces\[0\]\.oid is 16385, not a string$/],
  [
    'a tablespace oid twice',
    (m) => m.tablespaces.push({ oid: '16385', location: '/srv/other' }),
    /: tablespaces\[1\]\.oid is 16385, which another tablespace has too$/,
  ],
  ['a relative tablespace location', (m) => (m.tablespaces[0].location = 'srv/ts'), /: tablespaces\[0\]\.location is "srv\/ts", which is not absolute$/],
  [
    'a tablespace location going up',
    (m) => (m.tablespaces[0].location = '/srv/ts/../../etc'),
    /: tablespaces\[0\]\.location is "\/srv\/ts\/\.\.\/\.\.\/etc", which goes up with \.\.$/,
  ],
  [
    'a tablespace location not normalised',
    (m) => (m.tablespaces[0].location = '/srv/./ts'),
    /: tablespaces\[0\]\.location is "\/srv\/\.\/ts", which is not normalised/,
  ],
  [
    'a backup label of another start',
    (m) => (m.backupLabel = 'START WAL LOCATION: 0/9000028 (file 000000010000000000000009)\n'),
    /: backupLabel does not start at startLsn 0\/4000028 in 000000010000000000000004$/,
  ],
  [
    'a manifest key of another backup',
    (m) => (m.manifest.key = 'gcwal.json'),
    /: manifest\.key is "gcwal\.json", not backups\/base_000000010000000000000004\/manifest\.jsonl$/,
  ],
  ['a negative manifest entry count', (m) => (m.manifest.entries = -4), /: manifest\.entries is -4, below 0$/],
  ['a manifest with an unknown field', (m) => (m.manifest.codec = 'none'), /: manifest\.codec is not a field of this format$/],
];
for (const [what, change, message] of damaged) {
  test(`backup metadata with ${what} is damaged, and the message names the field`, (t) => {
    const m = valid() as unknown as Record<string, any>;
    change(m);
    const err = t.throws(() => parse(m), { instanceOf: CorruptObjectError });
    t.regex(err!.message, message);
    t.is(err!.exitCode, 6);
  });
}

test('a backup label printing its start lsn zero-padded, as PostgreSQL 18 does, matches the start lsn', (t) => {
  const m = { ...valid(), backupLabel: 'START WAL LOCATION: 0/04000028 (file 000000010000000000000004)\n' };
  t.deepEqual(parse(m), m);
});

test('backup metadata in the folder of another backup is refused, with a hint to move it back', (t) => {
  const err = t.throws(() => parse(valid(), backupMetaKey('base_000000010000000000000009')), { instanceOf: CorruptObjectError });
  t.is(
    err!.message,
    'backup metadata backups/base_000000010000000000000009/backup.json: name is base_000000010000000000000004, but the object is in the folder of "base_000000010000000000000009"',
  );
  t.regex(err!.hint, /copied into the wrong folder/);
});

test('backup metadata that is not json, not an object, or of another format is damaged', (t) => {
  t.throws(() => parseBackupMeta('{ nope', KEY), { instanceOf: CorruptObjectError, message: /backup\.json is not valid json$/ });
  t.throws(() => parseBackupMeta('[1]', KEY), { instanceOf: CorruptObjectError, message: /backup\.json: the document is a list, not an object$/ });
  const err = t.throws(() => parse({ ...valid(), format: 3 }), { instanceOf: CorruptObjectError });
  t.regex(err!.message, /backup\.json has format 3, which this gcwal does not know$/);
  t.regex(err!.hint, /upgrade gcwal/);
});

test('a manifest of a newer format than this gcwal reads is refused with a hint to upgrade; format 2 and none (format 1) are read', (t) => {
  const err = t.throws(() => parse({ ...valid(), manifest: { ...valid().manifest, format: 3 } }), { instanceOf: CorruptObjectError });
  t.regex(err!.message, /backup\.json: the manifest has format 3, newer than this gcwal reads \(up to 2\)$/);
  t.regex(err!.hint, /upgrade gcwal/);
  const current = { ...valid(), manifest: { ...valid().manifest, format: 2 } };
  t.deepEqual(parse(current), current);
  t.is(parse(valid()).manifest.format, undefined);
});

const PARENT = 'base_000000010000000000000002';
const FULL = 'base_000000010000000000000001';

/** An incremental backup's metadata: format 2 with its parent and its chain's full backup. */
function incremental(): BackupMeta {
  return { ...valid(), format: 2, parent: PARENT, full: FULL };
}

test('an incremental backup names its parent and its full backup, and is read back unchanged', (t) => {
  t.deepEqual(parseBackupMeta(serializeBackupMeta(incremental()), KEY), incremental());
  t.true(isIncremental(incremental()));
  t.false(isIncremental(valid()));
});

const chainDamage: [string, (m: Record<string, any>) => void, RegExp][] = [
  ['a parent on a full backup (format 1)', (m) => ((m.format = 1), delete m.full), /: parent is set on a full backup \(format 1\)$/],
  ['no parent in format 2', (m) => delete m.parent, /: parent is missing \(an incremental backup, format 2, names its parent\)$/],
  ['no full backup in format 2', (m) => delete m.full, /: full is missing/],
  ['a parent that is not a backup name', (m) => (m.parent = '../x'), /: parent is "\.\.\/x", not a backup name$/],
  ['itself as its parent', (m) => (m.parent = NAME), /: parent is the backup itself$/],
];
for (const [what, change, message] of chainDamage) {
  test(`incremental backup metadata with ${what} is damaged`, (t) => {
    const m = incremental() as unknown as Record<string, any>;
    change(m);
    t.throws(() => parse(m), { instanceOf: CorruptObjectError, message });
  });
}
