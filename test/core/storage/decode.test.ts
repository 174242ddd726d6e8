import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { getCodec } from '../../../core/codec/index.ts';
import { CODEC_NAMES, type CodecName } from '../../../core/codec/types.ts';
import { Meta } from '../../../core/layout.ts';
import { openDecoded } from '../../../core/storage/decode.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { collect } from './contract.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-decode-'));
  dirs.push(dir);
  return new FileStorage(pathToFileURL(dir).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const raw = Buffer.concat([Buffer.alloc(300_000, 'abc'), Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 256))]);

async function put(s: FileStorage, key: string, codec: CodecName, meta: Record<string, string> = {}) {
  const c = getCodec(codec);
  return s.write(key, Readable.from([raw]).pipe(c.compressor()), {
    metadata: { [Meta.codec]: codec, [Meta.rawSize]: String(raw.length), [Meta.rawCrc32c]: crc32cBase64(crc32c(raw)), ...meta },
  });
}

for (const codec of CODEC_NAMES) {
  test(`an object written with ${codec} decodes to its raw bytes from its metadata alone`, async (t) => {
    const s = await fresh();
    await put(s, 'obj', codec);
    const info = await s.stat('obj');
    t.deepEqual(await collect(await openDecoded(s, info!)), raw);
  });
}

test('a flipped stored byte fails the stream as corrupt', async (t) => {
  const s = await fresh();
  await put(s, 'obj', 'none');
  const file = join(s.root, 'obj');
  const bytes = await readFile(file);
  bytes[1000] ^= 0x20;
  await writeFile(file, bytes);
  const err = await t.throwsAsync(collect(await openDecoded(s, (await s.stat('obj'))!)));
  t.is((err as { code?: string }).code, 'corrupt');
  t.regex(err!.message, /stored bytes of obj: crc32c .* does not match/);
});

test('content that decodes but differs from the recorded raw checksum is corrupt', async (t) => {
  const s = await fresh();
  await put(s, 'obj', 'gzip', { [Meta.rawCrc32c]: 'AAAAAA==' });
  const err = await t.throwsAsync(
    pipeline(await openDecoded(s, (await s.stat('obj'))!), async function* (src) {
      for await (const _ of src) yield;
    }),
  );
  t.is((err as { code?: string }).code, 'corrupt');
  t.regex(err!.message, /decoded content of obj/);
});

test('a missing or unknown codec is corrupt, never guessed', async (t) => {
  const s = await fresh();
  await s.write('nocodec', Readable.from([raw]), { metadata: { [Meta.rawSize]: String(raw.length), [Meta.rawCrc32c]: crc32cBase64(crc32c(raw)) } });
  await t.throwsAsync(openDecoded(s, (await s.stat('nocodec'))!), { code: 'corrupt' } as never);
  await s.write('brotli', Readable.from([raw]), { metadata: { [Meta.codec]: 'brotli', [Meta.rawSize]: '1', [Meta.rawCrc32c]: 'AAAAAA==' } });
  await t.throwsAsync(openDecoded(s, (await s.stat('brotli'))!), { code: 'corrupt' } as never);
});

test('an object without raw checksums cannot be decoded unverified', async (t) => {
  const s = await fresh();
  await s.write('bare', Readable.from([raw]), { metadata: { [Meta.codec]: 'none' } });
  const err = await t.throwsAsync(openDecoded(s, (await s.stat('bare'))!));
  t.regex(err!.message, /lacks its raw size or crc32c metadata/);
});
