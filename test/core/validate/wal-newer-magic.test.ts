import test from 'ava';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { Meta, walObjectKey } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { validateWalObject } from '../../../core/validate/index.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { syntheticSegment, type SyntheticHeader } from '../wal/synthetic-segment.ts';

const MiB = 1024 * 1024;
const expect = { systemIdentifier: '7400000000000000001', walSegmentSize: MiB };
const NEWER: SyntheticHeader = { magic: 0xd119, systemIdentifier: expect.systemIdentifier, segmentSize: MiB };
const NAME = '000000010000000000000003';

let work: TempDir;
let counter = 0;

test.before(async () => {
  work = await makeTempDir('validate-newer-wal');
});
test.after.always(async () => {
  await work?.cleanup();
});

/** A new repository holding segment 3 with `header`, stored uncompressed with the metadata wal-push writes. */
async function stored(header: SyntheticHeader) {
  const storage = new FileStorage(pathToFileURL(path.join(work.path, `repo-${++counter}`)).href);
  await storage.createRoot();
  await createRepositoryIdentity(storage, expect);
  const bytes = syntheticSegment(3n, header);
  const info = await storage.write(walObjectKey(NAME), Readable.from([bytes]), {
    metadata: {
      [Meta.codec]: 'none',
      [Meta.rawSize]: String(bytes.length),
      [Meta.rawCrc32c]: crc32cBase64(crc32c(bytes)),
      [Meta.systemId]: header.systemIdentifier,
    },
  });
  return { storage, info };
}

test('a segment whose page magic is newer than gcwal knows passes validation with a warning', async (t) => {
  const { storage, info } = await stored(NEWER);
  const result = await validateWalObject(storage, info, expect);
  t.true(result.ok, result.problem);
  t.like(result.details, { kind: 'segment', systemIdentifier: expect.systemIdentifier, walSegmentSize: MiB, pgMajor: undefined });
  t.regex(String(result.details?.warning), /^WAL page magic 0xD119 is newer than PostgreSQL 18's/);
});

test('an older unknown magic, or a newer one with an inconsistent header, fails validation', async (t) => {
  const cases: [SyntheticHeader, RegExp][] = [
    [{ ...NEWER, magic: 0xd117 }, /unknown WAL page magic 0xD117/],
    [{ ...NEWER, pageAddress: 2n * BigInt(MiB) }, /but its name places it at 0\/300000/],
    [{ ...NEWER, systemIdentifier: '7400000000000000002' }, /7400000000000000002/],
  ];
  for (const [header, problem] of cases) {
    const { storage, info } = await stored(header);
    const result = await validateWalObject(storage, info, expect);
    t.false(result.ok);
    t.regex(result.problem ?? '', problem);
  }
});
