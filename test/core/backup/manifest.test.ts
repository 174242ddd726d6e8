import test from 'ava';
import { Readable } from 'node:stream';
import { checkManifestEntry, readLines } from '../../../core/backup/manifest.ts';
import { CorruptObjectError } from '../../../core/errors.ts';

async function lines(chunks: string[], max?: number): Promise<string[]> {
  const out: string[] = [];
  for await (const line of readLines(Readable.from(chunks.map((c) => Buffer.from(c))), 'm', max)) out.push(line);
  return out;
}

test('lines are split wherever the chunks break, including inside a multi-byte character', async (t) => {
  const text = '{"path":"é"}\n{"path":"b"}\nlast';
  const bytes = Buffer.from(text);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const out: string[] = [];
    for await (const line of readLines(Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)]), 'm')) out.push(line);
    t.deepEqual(out, ['{"path":"é"}', '{"path":"b"}', 'last'], `cut at ${cut}`);
  }
  t.deepEqual(await lines(['a\n\nb\n']), ['a', '', 'b']);
  t.deepEqual(await lines([]), []);
});

test('a line longer than the limit is corruption', async (t) => {
  await t.throwsAsync(lines(['x'.repeat(20)], 10), { instanceOf: CorruptObjectError, message: /m has a line longer than 10 characters/ });
});

const file = { path: 'base/1/2', type: 'file', size: 3, crc32c: 'AAAAAA==', part: 1, mode: 0o600, mtime: '2024-05-01T00:00:00Z' };
// Three blocks of 8 KiB, the last one short.
const blocked = { ...file, size: 20_000, blockSize: 8192, blocks: Buffer.alloc(12).toString('base64') };
// Where the file lies in its part (manifest format 2).
const ranged = { ...file, offset: 512, blockOffset: 0, storedOffset: 40, storedEnd: 90 };
const link = { path: 'pg_tblspc/16385', type: 'symlink', size: 0, mode: 0o777, mtime: '2024-05-01T00:00:00.000Z', target: '/srv/ts' };
const bad: [string, unknown, RegExp][] = [
  ['not an object', 'x', /an entry without a path/],
  ['an unsafe path', { ...file, path: '../x' }, /unsafe path/],
  ['an unknown type', { ...file, type: 'fifo' }, /base\/1\/2 has type that is "fifo", an unknown type/],
  ['a field the format does not define', { ...file, owner: 'root' }, /base\/1\/2 has owner that is not a field of this format/],
  ['a negative size', { ...file, size: -1 }, /base\/1\/2 has size that is -1, below 0/],
  ['a size that is a string', { ...file, size: '3' }, /base\/1\/2 has size that is "3", not an integer/],
  ['no checksum', { ...file, crc32c: undefined }, /base\/1\/2 has crc32c that is missing/],
  ['a checksum that is not base64 crc32c', { ...file, crc32c: 'nope' }, /has crc32c that is "nope", not a base64 crc32c/],
  ['a part beyond the last', { ...file, part: 2 }, /has part that is 2, a part the backup does not have \(it has 2\)/],
  ['a negative part', { ...file, part: -1 }, /has part that is -1, below 0/],
  ['a file without a part', { ...file, part: undefined }, /has part that is missing/],
  ['no mode', { ...file, mode: 'rw' }, /has mode that is "rw", not an integer/],
  ['a mode with file type bits', { ...file, mode: 0o100644 }, /has mode that is 33188, above 4095/],
  ['a bad mtime', { ...file, mtime: 'yesterday' }, /has mtime that is "yesterday", not an ISO time/],
  ['a directory with a size', { path: 'base', type: 'directory', size: 5, mode: 0o700, mtime: file.mtime }, /base has size that is 5, above 0/],
  [
    'a directory with a checksum',
    { path: 'base', type: 'directory', size: 0, crc32c: 'AAAAAA==', mode: 0o700, mtime: file.mtime },
    /base has crc32c that is set on a directory/,
  ],
  ['a file with a link target', { ...file, target: '/etc' }, /has target that is set on a file/],
  ['a symbolic link outside pg_tblspc', { ...link, path: 'escape' }, /escape has type that is symlink outside pg_tblspc\/<oid>/],
  ['a symbolic link deeper in pg_tblspc', { ...link, path: 'pg_tblspc/16385/x' }, /symlink outside pg_tblspc\/<oid>/],
  ['a symbolic link under a name that is not an oid', { ...link, path: 'pg_tblspc/abc' }, /symlink outside pg_tblspc\/<oid>/],
  ['block checksums and no block size', { ...blocked, blockSize: undefined }, /has blockSize that is undefined, not an integer/],
  ['a block size and no block checksums', { ...blocked, blocks: undefined }, /has blocks that is missing/],
  ['a block size that is not a power of two', { ...blocked, blockSize: 12_288 }, /has blockSize that is 12288, not a power of two/],
  ['a block size under a page', { ...blocked, blockSize: 4096 }, /has blockSize that is 4096, below 8192/],
  ['one block checksum too few', { ...blocked, blocks: Buffer.alloc(8).toString('base64') }, /has blocks that is not the base64 of 3 block checksums/],
  [
    'block checksums on a directory',
    { path: 'base', type: 'directory', size: 0, mode: 0o700, mtime: file.mtime, blocks: 'AAAAAA==' },
    /base has blocks that is set on a directory/,
  ],
  ['a tablespace link whose target is not a string', { ...link, target: 7 }, /pg_tblspc\/16385 has target that is 7, not a string/],
  ['a file range without its stored end', { ...ranged, storedEnd: undefined }, /has storedEnd that is missing \(offset, blockOffset, storedOffset set\)/],
  ['a file range whose block begins after the file', { ...ranged, blockOffset: 1024 }, /has blockOffset that is 1024, after offset 512/],
  ['an empty stored range', { ...ranged, storedEnd: 40 }, /has storedEnd that is 40, not after storedOffset 40/],
  ['a range on an empty file', { ...ranged, size: 0 }, /has offset that is set on an empty file/],
  [
    'a range on a directory',
    { path: 'base', type: 'directory', size: 0, mode: 0o700, mtime: file.mtime, offset: 3 },
    /base has offset that is set on a directory/,
  ],
];
for (const [name, value, message] of bad) {
  test(`a manifest entry with ${name} is corruption`, (t) => {
    t.throws(() => checkManifestEntry(value, 2, 'manifest line 3'), { instanceOf: CorruptObjectError, message });
  });
}

const referenced = { path: 'base/1/2', type: 'file', size: 3, crc32c: 'AAAAAA==', ref: 'base_000000010000000000000002', mode: 0o600, mtime: file.mtime };
const badRefs: [string, unknown, RegExp][] = [
  ['a reference to another backup in a full backup', referenced, /base\/1\/2 has ref that is set in a full backup/],
  ['a reference that is not a backup name', { ...referenced, ref: '../x' }, /has ref that is "\.\.\/x", not a backup name/],
  ['both a reference and a part', { ...referenced, part: 0 }, /has part that is set on a file stored in another backup \(ref\)/],
  [
    'a reference on a directory',
    { path: 'base', type: 'directory', size: 0, mode: 0o700, mtime: file.mtime, ref: referenced.ref },
    /has ref that is set on a directory/,
  ],
];
for (const [name, value, message] of badRefs) {
  test(`a manifest entry with ${name} is corruption`, (t) => {
    const refs = name !== 'a reference to another backup in a full backup';
    t.throws(() => checkManifestEntry(value, 2, 'manifest line 3', { refs }), { instanceOf: CorruptObjectError, message });
  });
}

test("an incremental backup's entry may name the backup holding the file instead of a part", (t) => {
  t.deepEqual(checkManifestEntry(referenced, 2, 'm', { refs: true }), referenced);
});

test('a well-formed entry is returned with its path normalised', (t) => {
  const dir = { path: 'base/', type: 'directory', size: 0, mode: 0o700, mtime: '2024-05-01T00:00:00Z' };
  t.deepEqual(checkManifestEntry(dir, 1, 'm'), { ...dir, path: 'base' });
  t.deepEqual(checkManifestEntry(file, 2, 'm'), file);
  t.deepEqual(checkManifestEntry(blocked, 2, 'm'), blocked);
  t.deepEqual(checkManifestEntry(ranged, 2, 'm'), ranged);
  t.deepEqual(checkManifestEntry(link, 1, 'm'), link);
});
