import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { codecFromName, getCodec, isCodecName } from '../../../core/codec/index.ts';
import { CODEC_NAMES, type CodecName } from '../../../core/codec/types.ts';
import { CorruptObjectError } from '../../../core/errors.ts';

const codecs: { name: CodecName; extension: string }[] = [
  { name: 'lzo', extension: '.lzo' },
  { name: 'zstd', extension: '.zst' },
  { name: 'gzip', extension: '.gz' },
  { name: 'none', extension: '' },
];

test('every codec name has a codec', (t) => {
  t.deepEqual(codecs.map((c) => c.name).sort(), [...CODEC_NAMES].sort());
});

for (const { name, extension } of codecs) {
  test(`getCodec('${name}') is the ${name} codec with extension '${extension}'`, (t) => {
    t.like(getCodec(name), { name, extension });
    t.like(codecFromName(name, 'wal/000000010000000000000001'), { name, extension });
    t.true(isCodecName(name));
  });
}

const badNames: { text: string | undefined; message: string }[] = [
  { text: undefined, message: 'object wal/000000010000000000000001 has no gcwal-codec metadata' },
  { text: '', message: 'object wal/000000010000000000000001 has no gcwal-codec metadata' },
  { text: 'brotli', message: 'object wal/000000010000000000000001 names unknown codec "brotli" in its gcwal-codec metadata' },
  { text: 'LZO', message: 'object wal/000000010000000000000001 names unknown codec "LZO" in its gcwal-codec metadata' },
];

for (const { text, message } of badNames) {
  test(`codecFromName rejects ${JSON.stringify(text) ?? 'a missing name'} as a corrupt object`, (t) => {
    const err = t.throws(() => codecFromName(text, 'wal/000000010000000000000001'), { instanceOf: CorruptObjectError });
    t.is(err?.message, message);
    t.is((err as CorruptObjectError).code, 'corrupt');
    t.false(isCodecName(text ?? ''));
  });
}

const root = fileURLToPath(new URL('../../../', import.meta.url));
const natives = /node_modules\/(lzo|lzo-wasm|zstd-napi|fast-crc32c|sse4_crc32)\//;

test('importing the codecs and checksums loads no native module until one is used', async (t) => {
  const script = `
    import { createRequire } from 'node:module';
    const cache = createRequire(import.meta.url).cache;
    const loaded = () => Object.keys(cache).filter((p) => ${natives}.test(p)).map((p) => p.match(${natives})[1]);
    const { getCodec } = await import('./core/codec/index.ts');
    const { crc32c } = await import('./core/checksum/crc32c.ts');
    const atImport = loaded();
    getCodec('lzo').compressor();
    getCodec('zstd').compressor();
    crc32c(Buffer.from('x'));
    console.log(JSON.stringify({ atImport, afterUse: [...new Set(loaded())].sort() }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root });
  const { atImport, afterUse } = JSON.parse(stdout) as { atImport: string[]; afterUse: string[] };
  t.deepEqual(atImport, []);
  // The CRC32C addon is loaded straight from sse4_crc32 (fast-crc32c's own loader only as a fallback).
  t.deepEqual(afterUse, ['lzo', 'sse4_crc32', 'zstd-napi']);
});
