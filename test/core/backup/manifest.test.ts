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
const bad: [string, unknown, RegExp][] = [
  ['not an object', 'x', /an entry without a path/],
  ['an unsafe path', { ...file, path: '../x' }, /unsafe path/],
  ['an unknown type', { ...file, type: 'fifo' }, /base\/1\/2 has an unknown type/],
  ['a negative size', { ...file, size: -1 }, /has no valid size/],
  ['no checksum', { ...file, crc32c: undefined }, /has no crc32c/],
  ['a part beyond the last', { ...file, part: 2 }, /names part 2, which does not exist/],
  ['no mode', { ...file, mode: 'rw' }, /has no valid mode/],
  ['a bad mtime', { ...file, mtime: 'yesterday' }, /has no valid mtime/],
];
for (const [name, value, message] of bad) {
  test(`a manifest entry with ${name} is corruption`, (t) => {
    t.throws(() => checkManifestEntry(value, 2, 'manifest line 3'), { instanceOf: CorruptObjectError, message });
  });
}

test('a well-formed entry is returned with its path normalised', (t) => {
  t.deepEqual(checkManifestEntry({ path: 'base/', type: 'directory', size: 0, mode: 0o700, mtime: 'x' }, 1, 'm'), { path: 'base', type: 'directory', size: 0, mode: 0o700, mtime: 'x' });
  t.deepEqual(checkManifestEntry(file, 2, 'm'), file);
});
