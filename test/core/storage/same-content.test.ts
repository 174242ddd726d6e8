/**
 * core/storage/same-content.ts on gs:// (the emulator computes every
 * object's CRC32C, as Cloud Storage does): a create-only write whose answer
 * is lost, and whose retry meets the object it made itself, is written; an
 * object is "the same content" only by what the storage computed or what
 * it decodes to, never by the metadata beside it.
 */
import test from 'ava';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { AlreadyExistsError } from '../../../core/errors.ts';
import { Meta } from '../../../core/layout.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { holdsSameContent, writeOnce } from '../../../core/storage/same-content.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { bytes } from '../../local/gcs/harness.ts';

let stack: LocalStack;
let counter = 0;

test.before(async () => {
  stack = await startLocalStack();
});
test.after.always(async () => {
  await stack?.close();
});

function repo(): GcsStorage {
  return new GcsStorage(`gs://${stack.bucket}/same-${++counter}`, {
    endpoint: stack.emulator.url,
    metadataServer: { host: stack.metadata.host },
    retries: 2,
    maxRetryDelaySeconds: 0.05,
  });
}

/** Lose the answer to the next upload only. */
function loseNextAnswer(): void {
  let uploads = 0;
  stack.emulator.setFaults({
    rate: 1,
    kinds: ['lose-answer'],
    match: (method, target) => method === 'POST' && target.startsWith('/upload/') && ++uploads === 1,
  });
}

const checksum = (data: Buffer) => ({ size: data.length, crc32c: crc32cBase64(crc32c(data)) });

test.serial('a write whose answer is lost is retried into its own object: a plain write calls that "already exists", writeOnce calls it written', async (t) => {
  const storage = repo();
  const body = Buffer.from('{"name":"base_000000010000000000000002"}\n');
  loseNextAnswer();
  await t.throwsAsync(storage.write('plain.json', Readable.from([body])), { instanceOf: AlreadyExistsError });
  loseNextAnswer();
  const info = await writeOnce(storage, 'once.json', () => [body]);
  stack.emulator.setFaults(undefined);
  t.is(info.size, body.length);
  t.is(info.crc32c, checksum(body).crc32c);
});

test.serial('writeOnce over other content is AlreadyExistsError and leaves it alone', async (t) => {
  const storage = repo();
  await storage.write('taken', Readable.from([Buffer.from('theirs')]));
  await t.throwsAsync(
    writeOnce(storage, 'taken', () => [Buffer.from('ours!!')]),
    { instanceOf: AlreadyExistsError },
  );
  const again = await writeOnce(storage, 'taken', () => [Buffer.from('the'), Buffer.from('irs')]);
  t.is(again.size, 6);
});

test.serial('the same content is told by the stored checksum, or by decoding, never by metadata', async (t) => {
  const storage = repo();
  const raw = bytes(50_000, 3);
  const meta = { [Meta.codec]: 'gzip', [Meta.rawSize]: String(raw.length), [Meta.rawCrc32c]: checksum(raw).crc32c };
  const stored = gzipSync(raw);
  const same = await storage.write('same', Readable.from([stored]), { metadata: meta });
  t.true(await holdsSameContent(storage, same, { raw: checksum(raw), stored: checksum(stored) }), 'same stored bytes');
  t.true(await holdsSameContent(storage, same, { raw: checksum(raw), stored: checksum(gzipSync(raw, { level: 9 })) }), 'compressed otherwise, decoded');
  t.true(await holdsSameContent(storage, same, { raw: checksum(raw) }), 'decoded, with no stored checksum of ours');
  const damaged = Buffer.from(stored);
  damaged[damaged.length >> 1]! ^= 1;
  const bad = await storage.write('damaged', Readable.from([damaged]), { metadata: meta });
  t.false(await holdsSameContent(storage, bad, { raw: checksum(raw), stored: checksum(stored) }), 'damaged bytes with the right metadata');
  const other = await storage.write('other', Readable.from([gzipSync(bytes(50_000, 4))]), { metadata: meta });
  t.false(await holdsSameContent(storage, other, { raw: checksum(raw) }), 'other content with the right metadata');
});
