/**
 * Validation reads the WAL records of every segment it validates: real
 * segments from PostgreSQL 15 archived with wal-push carry what their records
 * say, and a segment whose records do not check out fails although its
 * compressed stream, its raw size and its CRC32C are all intact (the damage
 * happened before the upload).
 */
import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pushWalFile } from '../../../agent/wal/push.ts';
import { walObjectKey } from '../../../core/layout.ts';
import { createRepositoryIdentity } from '../../../core/repository.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { recordFactsOf, validateWalObject, type ValidationResult } from '../../../core/validate/index.ts';
import { parseLongPageHeader } from '../../../core/wal/header.ts';
import { makeRealWal, readSegment, walkSegment, type RealWal } from '../wal/records/real-wal.ts';

let wal: RealWal;
let storage: FileStorage;
let systemIdentifier: string;

test.before(async () => {
  wal = await makeRealWal();
  systemIdentifier = parseLongPageHeader(await readSegment(wal, wal.segments[0])).systemIdentifier;
  storage = new FileStorage(pathToFileURL(path.join(wal.dir.path, 'repo')).href);
  await storage.createRoot();
  await createRepositoryIdentity(storage, { systemIdentifier, walSegmentSize: wal.segmentSize });
  for (const name of wal.segments) await pushWalFile(storage, path.join(wal.archive, name), { codec: 'lzo', level: undefined });
});

test.after.always(async () => {
  await wal?.cleanup();
});

async function validate(name: string): Promise<ValidationResult> {
  return validateWalObject(storage, (await storage.stat(walObjectKey(name)))!, { systemIdentifier, walSegmentSize: wal.segmentSize });
}

test("a valid segment's result carries its record count, transaction end times and restore points", async (t) => {
  const withPoints = [];
  for (const name of wal.segments) {
    const result = await validate(name);
    t.true(result.ok, JSON.stringify(result));
    const facts = recordFactsOf(result);
    t.deepEqual(facts, walkSegment(await readSegment(wal, name), name).facts, name);
    if (facts?.restorePoints.length) withPoints.push(...facts.restorePoints.map((p) => p.name));
  }
  t.deepEqual(
    withPoints,
    wal.restorePoints.map((p) => p.name),
  );
});

test('a segment whose record was damaged before the upload fails on its records, naming the segment and the record', async (t) => {
  const name = wal.segments[2];
  const buf = Buffer.from(await readSegment(wal, name));
  // A byte in the middle of the segment, inside some record's data.
  buf[300_000] ^= 0x20;
  const dir = path.join(wal.dir.path, 'damaged');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, name), buf);
  const damaged = new FileStorage(pathToFileURL(path.join(wal.dir.path, 'damaged-repo')).href);
  await damaged.createRoot();
  await createRepositoryIdentity(damaged, { systemIdentifier, walSegmentSize: wal.segmentSize });
  await pushWalFile(damaged, path.join(dir, name), { codec: 'lzo', level: undefined });
  const result = await validateWalObject(damaged, (await damaged.stat(walObjectKey(name)))!, { systemIdentifier, walSegmentSize: wal.segmentSize });
  t.false(result.ok);
  t.regex(
    result.problem ?? '',
    new RegExp(`^${name}'s WAL records do not check out: (incorrect resource manager data checksum in record|record with invalid length) at 0/[0-9A-F]+$`),
  );
  t.is(result.rawSize, undefined);
  t.is(recordFactsOf(result), undefined);
});
