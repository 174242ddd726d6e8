/**
 * A part whose upload meets an object already under its key (an earlier
 * attempt that landed though its answer was lost) is kept only when that
 * object holds what this backup builds, judged by the stored content on
 * gs:// (the emulator computes the CRC32C, as Cloud Storage does); any
 * other content stops the backup with a conflict, so no backup.json ever
 * names a part that is not its own.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeParts, type PartsOptions } from '../../../agent/backup/parts.ts';
import { planParts } from '../../../agent/backup/plan.ts';
import { walkDataDirectory } from '../../../agent/backup/walk.ts';
import { getCodec } from '../../../core/codec/index.ts';
import { ConflictError } from '../../../core/errors.ts';
import { GcsStorage } from '../../../core/storage/gcs/storage.ts';
import { startLocalStack, type LocalStack } from '../../../local/stack.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

let stack: LocalStack;
let work: TempDir;
let counter = 0;

test.before(async () => {
  stack = await startLocalStack();
  work = await makeTempDir('part-compare');
});
test.after.always(async () => {
  await stack?.close();
  await work?.cleanup();
});

/** A data directory of a few files, its parts planned, and a fresh gs:// repository. */
async function setup() {
  const n = ++counter;
  const pgdata = join(work.path, `pgdata-${n}`);
  mkdirSync(join(pgdata, 'base/1'), { recursive: true });
  for (let i = 0; i < 6; i++) writeFileSync(join(pgdata, `base/1/${16384 + i}`), randomBytes(60_000));
  const walk = await walkDataDirectory(pgdata, { pgMajor: 15 });
  const plans = planParts(walk.entries, 100_000);
  const storage = new GcsStorage(`gs://${stack.bucket}/parts-${n}`, {
    endpoint: stack.emulator.url,
    metadataServer: { host: stack.metadata.host },
    retries: 1,
    maxRetryDelaySeconds: 0.05,
  });
  const options: PartsOptions = {
    storage,
    backupName: 'base_000000010000000000000002',
    codec: getCodec('zstd'),
    concurrency: 2,
    retries: 1,
    signal: new AbortController().signal,
  };
  return { pgdata, plans, options };
}

test("parts an earlier attempt stored with this backup's content are kept as stored", async (t) => {
  const { plans, options } = await setup();
  const first = await writeParts(plans, options);
  t.true(first.parts.length >= 3);
  const again = await writeParts(plans, options);
  t.deepEqual(again.parts, first.parts);
  t.deepEqual(again.manifest, first.manifest);
});

test('a part already stored with other content stops the backup with a conflict', async (t) => {
  const { pgdata, plans, options } = await setup();
  await writeParts(plans, options);
  // The same size, other bytes: only the content tells.
  writeFileSync(join(pgdata, 'base/1/16386'), randomBytes(60_000));
  await t.throwsAsync(writeParts(plans, options), { instanceOf: ConflictError, message: /already stored at .* with other content/ });
});
