import test from 'ava';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { warnNewerWalOnce } from '../../../agent/wal/newer-format.ts';
import { pushWalFile } from '../../../agent/wal/push.ts';
import { ClusterMismatchError, InvalidInputError } from '../../../core/errors.ts';
import { walObjectKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { repoCreate } from '../../../local/testkit/repo.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';
import { syntheticSegment, type SyntheticHeader } from '../../core/wal/synthetic-segment.ts';

const MiB = 1024 * 1024;
const cluster = { systemIdentifier: '7400000000000000001', walSegmentSize: MiB };
const NEWER: SyntheticHeader = { magic: 0xd119, systemIdentifier: cluster.systemIdentifier, segmentSize: MiB };

let work: TempDir;
let counter = 0;

test.before(async () => {
  work = await makeTempDir('newer-wal');
});
test.after.always(async () => {
  await work?.cleanup();
});

/** A repository created for `cluster` and a pg_wal directory holding segment 3 with `header`. */
async function setUp(header: SyntheticHeader, name = '000000010000000000000003'): Promise<{ storage: FileStorage; walDir: string; file: string }> {
  const n = ++counter;
  const storage = new FileStorage(pathToFileURL(path.join(work.path, `repo-${n}`)).href);
  await repoCreate(storage, cluster);
  const walDir = path.join(work.path, `pg_wal-${n}`);
  await mkdir(walDir);
  const file = path.join(walDir, name);
  await writeFile(file, syntheticSegment(3n, header));
  return { storage, walDir, file };
}

test('a segment whose page magic is newer than gcwal knows is archived, and says so', async (t) => {
  const { storage, file } = await setUp(NEWER);
  const result = await pushWalFile(storage, file, { codec: 'lzo', level: undefined });
  t.is(result.status, 'archived');
  t.is(result.newerWalMagic, 0xd119);
  t.truthy(await storage.stat(walObjectKey('000000010000000000000003')));
});

test('the newer-WAL warning is given once per pg_wal, and again for another magic', async (t) => {
  const { walDir } = await setUp(NEWER);
  const warnings: string[] = [];
  for (const magic of [0xd119, 0xd119, 0xd11a]) await warnNewerWalOnce(walDir, magic, (m) => warnings.push(m));
  t.is(warnings.length, 2);
  t.regex(warnings[0], /^WAL page magic 0xD119 is newer than PostgreSQL 18's/);
  t.regex(warnings[1], /^WAL page magic 0xD11A /);
  t.deepEqual((await readdir(walDir)).filter((f) => f.startsWith('.')).sort(), ['.gcwal-newer-wal-D119', '.gcwal-newer-wal-D11A']);
});

test('an unknown magic older than the newest known is refused and nothing is stored', async (t) => {
  const { storage, file } = await setUp({ ...NEWER, magic: 0xd117 });
  await t.throwsAsync(pushWalFile(storage, file, { codec: 'lzo', level: undefined }), {
    instanceOf: InvalidInputError,
    message: /has unknown WAL page magic 0xD117$/,
  });
  t.is(await storage.stat(walObjectKey('000000010000000000000003')), undefined);
});

test('a newer magic is refused when the header disagrees with the name or the repository', async (t) => {
  const cases: [SyntheticHeader, RegExp, Function][] = [
    [{ ...NEWER, pageAddress: 2n * BigInt(MiB) }, /holds WAL from 0\/200000, but its name places it at 0\/300000$/, InvalidInputError],
    [{ ...NEWER, blockSize: 8193 }, /invalid WAL page size 8193$/, InvalidInputError],
    [{ ...NEWER, systemIdentifier: '7400000000000000002' }, /7400000000000000002/, ClusterMismatchError],
    [{ ...NEWER, segmentSize: 2 * MiB }, /./, ClusterMismatchError],
  ];
  for (const [header, message, instanceOf] of cases) {
    const { storage, file } = await setUp(header);
    await t.throwsAsync(pushWalFile(storage, file, { codec: 'lzo', level: undefined }), { instanceOf: instanceOf as new () => Error, message });
    t.is(await storage.stat(walObjectKey('000000010000000000000003')), undefined);
  }
});
