/**
 * A segment larger than one upload chunk goes up to gs:// in a resumable
 * session. Damage in transit (one byte flipped by the emulator) must never
 * be acknowledged: the server checks the CRC32C the last chunk carries, so
 * a damaged object never exists, the push retries and archives the real
 * bytes. Not "already archived" on the strength of the metadata the damaged
 * attempt wrote.
 */
import test from 'ava';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pushWalFile } from '../../../agent/wal/push.ts';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { ConflictError } from '../../../core/errors.ts';
import { Meta, walObjectKey } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { openDecoded } from '../../../core/storage/decode.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { STREAM_TURNAROUND_MS } from '../../../core/storage/gcs/write.ts';
import type { FaultPlan } from '../../../local/gcs/faults.ts';
import { readFile } from 'node:fs/promises';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { startWalSource, type WalSource } from '../../functions/wal-source.ts';
import { adoptStackEnv } from '../../helpers/stack-env.ts';
import { collect } from '../../core/storage/contract.ts';

const KiB = 1024;

let stack: LocalStack;
let wal: WalSource;
let counter = 0;

test.before(async () => {
  stack = await startLocalStack({ prefix: 'integrity' });
  adoptStackEnv(stack);
  wal = await startWalSource();
});

test.after.always(async () => {
  await wal?.stop();
  await stack?.close();
});

/** A fresh repository whose uploads go in chunks of 256 KiB, so an uncompressed 1 MiB segment takes four. */
async function repository(): Promise<GcsStorage> {
  const storage = new GcsStorage(`gs://${stack.bucket}/integrity-${++counter}`, {
    endpoint: stack.emulator.url,
    metadataServer: { host: stack.metadata.host },
    chunkSize: 256 * KiB,
    retries: 3,
    maxRetryDelaySeconds: 1,
  });
  await createRepositoryIdentity(storage, { systemIdentifier: wal.systemIdentifier, walSegmentSize: wal.segmentSize });
  return storage;
}

/**
 * Each test runs against a near endpoint (the emulator as it is: writes
 * stream while they are produced) and a distant one (every answer comes
 * late, as from Cloud Storage: writes go in chunks of the chunk size).
 */
const endpoints = [
  { name: 'a near endpoint', latencyMs: 0 },
  { name: 'a distant endpoint', latencyMs: STREAM_TURNAROUND_MS + 20 },
];

/** Fault `kinds` into the session PUTs `pick` chooses (by their 1-based number), every answer `latencyMs` late; returns the count of session PUTs so far. */
function faultChunks(latencyMs: number, kinds: FaultPlan['kinds'], pick: (n: number) => boolean): { chunks: number } {
  const seen = { chunks: 0 };
  stack.emulator.setFaults({ rate: 1, kinds, latencyMs, match: (method, target) => method === 'PUT' && target.includes('upload_id=') && pick(++seen.chunks) });
  return seen;
}

for (const endpoint of endpoints) {
  test.serial(
    `against ${endpoint.name}, a segment damaged in transit in its first chunk is archived with its real bytes, not acknowledged damaged`,
    async (t) => {
      const seen = faultChunks(endpoint.latencyMs, ['corrupt-upload'], (n) => n === 1);
      const storage = await repository();
      const [name] = await wal.produce(1);
      const result = await pushWalFile(storage, wal.file(name!), { codec: 'none', level: undefined, retries: 3 });
      stack.emulator.setFaults(undefined);
      t.true(seen.chunks >= 4, `${seen.chunks} chunk requests`);
      t.is(result.status, 'archived');
      const info = await storage.stat(walObjectKey(name!));
      t.truthy(info);
      t.true((await collect(await openDecoded(storage, info!))).equals(await readFile(wal.file(name!))), 'the archived segment is byte-identical');
    },
  );
}

/** Store `body` under `name`'s key as a push would, with `codec` and the raw size and CRC32C of the real segment in its metadata. */
async function plant(storage: GcsStorage, name: string, body: Buffer, codec: string): Promise<void> {
  const raw = await readFile(wal.file(name));
  await storage.write(walObjectKey(name), Readable.from([body]), {
    metadata: { [Meta.codec]: codec, [Meta.rawSize]: String(raw.length), [Meta.rawCrc32c]: crc32cBase64(crc32c(raw)), [Meta.systemId]: wal.systemIdentifier },
  });
}

test.serial('an archived object with the segment\'s metadata but damaged bytes is a conflict, never "already archived"', async (t) => {
  const storage = await repository();
  const [name] = await wal.produce(1);
  const damaged = Buffer.from(await readFile(wal.file(name!)));
  damaged[damaged.length >> 1]! ^= 0x40;
  await plant(storage, name!, damaged, 'none');
  await t.throwsAsync(pushWalFile(storage, wal.file(name!), { codec: 'none', level: undefined }), {
    instanceOf: ConflictError,
    message: /does not hold the content its metadata records/,
  });
});

test.serial('an archived object holding the same segment compressed differently is already archived, judged by decoding it', async (t) => {
  const storage = await repository();
  const [name] = await wal.produce(1);
  await plant(storage, name!, gzipSync(await readFile(wal.file(name!))), 'gzip');
  const log: string[] = [];
  stack.emulator.setFaults({ rate: 0, kinds: [], match: (method, target) => (log.push(`${method} ${target}`), false) });
  const result = await pushWalFile(storage, wal.file(name!), { codec: 'none', level: undefined });
  stack.emulator.setFaults(undefined);
  t.is(result.status, 'already-archived');
  t.true(
    log.some((line) => line.startsWith('GET ') && line.includes('%2Fwal%2F') && line.includes('alt=media')),
    'the object was read back',
  );
});

test.serial('a segment pushed twice is already archived the second time without reading the object back', async (t) => {
  const storage = await repository();
  const [name] = await wal.produce(1);
  t.is((await pushWalFile(storage, wal.file(name!), { codec: 'lzo', level: undefined })).status, 'archived');
  const log: string[] = [];
  stack.emulator.setFaults({ rate: 0, kinds: [], match: (method, target) => (log.push(`${method} ${target}`), false) });
  const again = await pushWalFile(storage, wal.file(name!), { codec: 'lzo', level: undefined });
  stack.emulator.setFaults(undefined);
  t.is(again.status, 'already-archived');
  t.false(
    log.some((line) => line.includes('%2Fwal%2F') && line.includes('alt=media')),
    log.join('\n'),
  );
});
