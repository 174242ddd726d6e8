import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { BlockIndex, recordOffsets, TarOffsets } from '../../../agent/backup/offsets.ts';
import type { ManifestEntry } from '../../../core/backup/meta.ts';
import { getCodec } from '../../../core/codec/index.ts';
import { lzopBlocksDecompressor, readLzopHeader } from '../../../core/codec/lzo/lzop.ts';

/** A tar as backup-push's tar-stream writes it: files of many sizes, a directory, a name long enough for a pax header. */
async function sampleTar(): Promise<{ bytes: Buffer; files: { name: string; data: Buffer }[] }> {
  const files = [
    { name: 'PG_VERSION', data: Buffer.from('15\n') },
    { name: 'base/1/1259', data: randomBytes(300 * 1024) },
    { name: `base/1/${'x'.repeat(150)}`, data: randomBytes(1000) },
    { name: 'base/1/empty', data: Buffer.alloc(0) },
    // Compressible, spanning several 256 KiB lzop blocks.
    { name: 'base/1/2600', data: Buffer.alloc(700 * 1024, 7) },
    { name: 'global/pg_control', data: randomBytes(8192) },
  ];
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  pack.entry({ name: 'base', type: 'directory' });
  for (const f of files) pack.entry({ name: f.name, size: f.data.length }, f.data);
  pack.finalize();
  await done;
  return { bytes: Buffer.concat(chunks), files };
}

/** `bytes` in pieces of `size` (the last shorter). */
function pieces(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('the data offset of every file in a tar is found wherever its chunks break, pax headers and directories aside', async (t) => {
  const { bytes, files } = await sampleTar();
  for (const size of [509, 512, 4099, bytes.length]) {
    const offsets = new TarOffsets();
    const passed = await collect(Readable.from(pieces(bytes, size)).pipe(offsets));
    // Buffer.equals: ava's deepEqual walks a buffer byte by byte.
    t.true(passed.equals(bytes), 'the bytes pass unchanged');
    const data = offsets.entries.filter((e) => e.type !== '5');
    t.is(data.length, files.length);
    for (const [i, e] of data.entries()) t.true(bytes.subarray(e.offset, e.offset + e.size).equals(files[i].data), `${files[i].name}, chunks of ${size}`);
  }
});

test("a file's recorded stored range, read alone and decoded from a block boundary, holds exactly its bytes", async (t) => {
  const { bytes, files } = await sampleTar();
  const offsets = new TarOffsets();
  const blocks = new BlockIndex();
  const compressor = getCodec('lzo').compressor(undefined, { rawChecksumRecorded: true, onBlock: blocks.add });
  const stored = await collect(
    Readable.from(pieces(bytes, 64 * 1024))
      .pipe(offsets)
      .pipe(compressor),
  );
  t.true(blocks.raw.length > 4, 'several lzop blocks');
  t.is(blocks.stored.at(-1), stored.length - 4, 'the last pair is the end marker');

  const lines: ManifestEntry[] = [
    { path: 'base', type: 'directory', size: 0, mode: 0o700, mtime: '2026-12-07T00:00:00Z' },
    ...files.map((f) => ({ path: f.name, type: 'file' as const, size: f.data.length, mode: 0o600, mtime: '2026-12-07T00:00:00Z' })),
  ];
  recordOffsets(lines, offsets.entries, blocks);
  const { header } = readLzopHeader(stored.subarray(0, 4096));
  for (const [i, f] of files.entries()) {
    const line = lines[i + 1];
    if (f.data.length === 0) {
      t.is(line.offset, undefined, 'an empty file has no range');
      continue;
    }
    const range = stored.subarray(line.storedOffset!, line.storedEnd!);
    t.true(range.length < stored.length, `${f.name} is read without the whole part`);
    const decoded = await collect(Readable.from(pieces(range, 1000)).pipe(lzopBlocksDecompressor(header, { native: true })));
    const from = line.offset! - line.blockOffset!;
    t.true(decoded.subarray(from, from + f.data.length).equals(f.data), f.name);
  }
  t.throws(() => recordOffsets(lines.slice(0, -1), offsets.entries, blocks), { message: /holds 6 files, its manifest lines 5/ });
});
