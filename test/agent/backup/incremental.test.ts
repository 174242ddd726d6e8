import test from 'ava';
import type { BackupMeta, ManifestEntry } from '../../../core/backup/meta.ts';
import { type ParentBackup, splitByParent, unchangedSinceParent } from '../../../agent/backup/incremental.ts';
import type { WalkEntry } from '../../../agent/backup/walk.ts';

const PARENT_START = '2024-05-01T12:00:10.500Z';
const OLD = new Date('2024-05-01T11:00:00.123Z');

const walked = (path: string, size: number, mtime: Date, type: WalkEntry['type'] = 'file'): WalkEntry => ({
  path,
  source: `/pgdata/${path}`,
  type,
  size,
  mode: 0o600,
  mtime,
});
const stored = (path: string, size: number, mtime: Date, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  path,
  type: 'file',
  size,
  crc32c: 'AQIDBA==',
  part: 0,
  mode: 0o600,
  mtime: mtime.toISOString(),
  ...extra,
});

const rows: [string, WalkEntry, ManifestEntry | undefined, boolean][] = [
  ['a file of the same size and time, older than the parent', walked('base/1/100', 8192, OLD), stored('base/1/100', 8192, OLD), true],
  ['a file of another size', walked('base/1/100', 16384, OLD), stored('base/1/100', 8192, OLD), false],
  ['a file of another time', walked('base/1/100', 8192, new Date(OLD.getTime() + 1)), stored('base/1/100', 8192, OLD), false],
  ['a file the parent does not have', walked('base/1/100', 8192, OLD), undefined, false],
  [
    'a file written in the second the parent started',
    walked('base/1/100', 8192, new Date('2024-05-01T12:00:10.100Z')),
    stored('base/1/100', 8192, new Date('2024-05-01T12:00:10.100Z')),
    false,
  ],
  [
    'a file written the second before the parent started',
    walked('base/1/100', 8192, new Date('2024-05-01T12:00:09.999Z')),
    stored('base/1/100', 8192, new Date('2024-05-01T12:00:09.999Z')),
    true,
  ],
  ['the control file', walked('global/pg_control', 8192, OLD), stored('global/pg_control', 8192, OLD), false],
  ['a directory', walked('base/1', 0, OLD, 'directory'), stored('base/1', 0, OLD), false],
];
for (const [what, entry, parentEntry, unchanged] of rows) {
  test(`${what} is ${unchanged ? 'taken from the parent' : 'copied again'}`, (t) => {
    t.is(unchangedSinceParent(entry, parentEntry, Date.parse(PARENT_START)), unchanged);
  });
}

test('unchanged files name the backup holding their bytes, with its checksums; the rest is copied', (t) => {
  const parent: ParentBackup = {
    meta: { name: 'base_000000010000000000000006', startTime: PARENT_START, full: 'base_000000010000000000000002' } as BackupMeta,
    full: 'base_000000010000000000000002',
    manifest: new Map([
      ['base/1/100', stored('base/1/100', 8192, OLD)],
      ['base/1/200', stored('base/1/200', 65536, OLD, { part: undefined, ref: 'base_000000010000000000000002', blockSize: 8192, blocks: 'AAAA' })],
      ['base/1/300', stored('base/1/300', 8192, OLD)],
    ]),
  };
  const entries = [
    walked('base/1', 0, OLD, 'directory'),
    walked('base/1/100', 8192, OLD),
    walked('base/1/200', 65536, OLD),
    walked('base/1/300', 8192, new Date()),
    walked('base/1/400', 8192, OLD),
  ];
  const { copy, referenced } = splitByParent(entries, parent);
  t.deepEqual(
    copy.map((e) => e.path),
    ['base/1', 'base/1/300', 'base/1/400'],
  );
  t.deepEqual(referenced, [
    { path: 'base/1/100', type: 'file', size: 8192, crc32c: 'AQIDBA==', ref: 'base_000000010000000000000006', mode: 0o600, mtime: OLD.toISOString() },
    {
      path: 'base/1/200',
      type: 'file',
      size: 65536,
      crc32c: 'AQIDBA==',
      ref: 'base_000000010000000000000002',
      mode: 0o600,
      mtime: OLD.toISOString(),
      blockSize: 8192,
      blocks: 'AAAA',
    },
  ]);
});
