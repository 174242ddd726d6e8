import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { applyPatch, compareFile } from '../../../agent/restore/patch.ts';
import type { ManifestEntry } from '../../../core/backup/meta.ts';
import { BlockChecksums } from '../../../core/checksum/blocks.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { randomChunks } from '../../core/codec/helpers.ts';

const B = 8192;
let dir: string;
test.before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'gcwal-patch-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The manifest entry backup-push writes for `data`, with its block checksums. */
function entryOf(data: Buffer): ManifestEntry {
  const sums = new BlockChecksums(data.length);
  sums.update(data);
  return {
    path: 'f',
    type: 'file',
    size: data.length,
    crc32c: crc32cBase64(sums.finish()),
    part: 0,
    mode: 0o600,
    mtime: new Date(0).toISOString(),
    blockSize: sums.blockSize,
    blocks: sums.toBase64(),
  };
}

/** `base` with blocks `indexes` taken from `from`. */
function withBlocks(base: Buffer, from: Buffer, indexes: number[]): Buffer {
  const out = Buffer.from(base);
  for (const i of indexes) from.copy(out, i * B, i * B, Math.min((i + 1) * B, from.length));
  return out;
}

const cases: { name: string; local: (backup: Buffer) => Buffer; differing: number[] }[] = [
  { name: 'the same size, blocks 1, 3 and the short last one changed', local: (b) => withBlocks(b, randomBytes(b.length), [1, 3, 9]), differing: [1, 3, 9] },
  {
    name: 'shorter, cut inside block 6, block 0 changed',
    local: (b) => withBlocks(b, randomBytes(b.length), [0]).subarray(0, 6 * B + 100),
    differing: [0, 6, 7, 8, 9],
  },
  {
    name: 'longer by three blocks, block 2 changed',
    local: (b) => Buffer.concat([withBlocks(b, randomBytes(b.length), [2]), randomBytes(3 * B)]),
    differing: [2],
  },
];

for (const c of cases) {
  test(`a local file ${c.name} is patched: the differing blocks are found, and writing them makes it the backup`, async (t) => {
    const backup = randomBytes(9 * B + 500);
    const entry = entryOf(backup);
    const file = path.join(dir, c.name.replace(/\W+/g, '-'));
    const local = c.local(backup);
    await writeFile(file, local);
    const found = await compareFile(file, local.length, entry);
    if (found.kind !== 'patch') return t.fail(`found ${found.kind}`);
    t.deepEqual(
      [...found.patch.differing.keys()].filter((i) => found.patch.differing[i] === 1),
      c.differing,
    );
    t.is(found.patch.count, c.differing.length);
    const fh = await open(file, 'r+');
    const written = await applyPatch(randomChunks(backup, 20_000, 5), fh, entry, found.patch, 'file f');
    await fh.close();
    t.is(
      written,
      c.differing.reduce((n, i) => n + Math.min(B, backup.length - i * B), 0),
    );
    t.deepEqual(await readFile(file), backup);
  });
}

test("only the blocks a patch marks are written, whatever the chunking, and bytes that are not the backup's are refused", async (t) => {
  const backup = randomBytes(6 * B);
  const local = randomBytes(6 * B);
  const file = path.join(dir, 'marked');
  const differing = Uint8Array.from([0, 1, 1, 0, 1, 0]);
  for (const seed of [1, 2, 3]) {
    await writeFile(file, local);
    const fh = await open(file, 'r+');
    await applyPatch(randomChunks(backup, 9000, seed), fh, entryOf(backup), { blockSize: B, differing, count: 3 }, 'file f');
    await fh.close();
    t.deepEqual(await readFile(file), withBlocks(local, backup, [1, 2, 4]));
  }
  const fh = await open(file, 'r+');
  const damaged = Buffer.from(backup);
  damaged[3 * B] ^= 1;
  await t.throwsAsync(applyPatch([damaged], fh, entryOf(backup), { blockSize: B, differing, count: 3 }, 'file f'), {
    instanceOf: CorruptObjectError,
    message: /file f/,
  });
  await fh.close();
});

test('a file that matches is the same, one without block checksums that differs is rewritten, one with no block left to keep too', async (t) => {
  const backup = randomBytes(4 * B);
  const file = path.join(dir, 'whole');
  await writeFile(file, backup);
  t.deepEqual(await compareFile(file, backup.length, entryOf(backup)), { kind: 'same' });
  const { blockSize, blocks, ...plain } = entryOf(backup);
  t.deepEqual(await compareFile(file, backup.length, plain), { kind: 'same' });
  const changed = withBlocks(backup, randomBytes(backup.length), [2]);
  await writeFile(file, changed);
  t.deepEqual(await compareFile(file, changed.length, plain), { kind: 'rewrite' });
  t.deepEqual(await compareFile(file, changed.length, entryOf(randomBytes(4 * B))), { kind: 'rewrite' });
  t.is(crc32c(await readFile(file)), crc32c(changed), 'comparing writes nothing');
});

test("bytes whose blocks disagree with the manifest's block checksums are refused, though their whole checksum matches", async (t) => {
  const backup = randomBytes(4 * B);
  const entry = entryOf(backup);
  // The block list of other data: the blocks a delta kept were judged by a list that is not the backup's.
  const wrong = { ...entry, blocks: entryOf(randomBytes(4 * B)).blocks };
  const file = path.join(dir, 'disagree');
  await writeFile(file, backup);
  const fh = await open(file, 'r+');
  await t.throwsAsync(applyPatch([backup], fh, wrong, { blockSize: B, differing: Uint8Array.from([1, 0, 0, 0]), count: 1 }, 'file f'), {
    instanceOf: CorruptObjectError,
    message: /file f: block 0 does not match the manifest's block checksum/,
  });
  await fh.close();
});
