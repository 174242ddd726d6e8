/**
 * archiveWalFile's own decisions (agent/wal/archive.ts), before any push: a
 * marker answers without opening the repository, and an early helper thread
 * the configuration does not want is stopped. The push and push-ahead
 * themselves are push.test.ts's and ahead.test.ts's.
 */

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { createLogger } from '../../../agent/log.ts';
import { type ArchiveOptions, archiveWalFile } from '../../../agent/wal/archive.ts';
import { fileIdentity, MARKER_DIR, writeMarker } from '../../../agent/wal/marker.ts';
import type { LzopHelper } from '../../../core/codec/lzo/parallel.ts';
import type { Storage } from '../../../core/storage/types.ts';
import { makeTempDir, type TempDir } from '../../../local/testkit/tmp.ts';

const NAME = '00000001000000000000002A';
const REPO = 'file:///srv/gcwal/archive';

let work: TempDir;
test.before(async () => {
  work = await makeTempDir('archive');
});
test.after.always(async () => {
  await work?.cleanup();
});

let counter = 0;
/** A pg_wal directory holding NAME (not real WAL: nothing here reads it). */
async function walDir(): Promise<string> {
  const dir = path.join(work.path, `pg_wal-${++counter}`);
  await mkdir(dir);
  await writeFile(path.join(dir, NAME), Buffer.alloc(4096, 7));
  return dir;
}

/** A stand-in for the helper thread that counts its stops. */
function countingHelper(): LzopHelper & { stops: number } {
  const helper = { stops: 0, stop: async () => void helper.stops++ };
  return helper as unknown as LzopHelper & { stops: number };
}

function options(overrides: Partial<ArchiveOptions>): ArchiveOptions {
  return {
    repo: REPO,
    codec: 'lzo',
    level: undefined,
    retries: 0,
    storage: () => Promise.reject(new Error('the repository was opened')),
    log: createLogger(new PassThrough(), 'text'),
    signal: new AbortController().signal,
    ...overrides,
  };
}

test('a marker for this repository and this file answers without opening the repository, stops the early helper and is consumed', async (t) => {
  const dir = await walDir();
  const file = await fileIdentity(path.join(dir, NAME));
  await writeMarker(dir, { format: 1, repo: REPO, name: NAME, key: `wal/${NAME}`, rawSize: 4096, rawCrc32c: 'AAAAAA==', file: file! });
  const helper = countingHelper();
  await archiveWalFile(path.join(dir, NAME), options({ lzopHelper: helper }));
  t.is(helper.stops, 1);
  t.deepEqual(await readdir(path.join(dir, MARKER_DIR)), [], 'the marker is taken');
});

test('a marker of another repository does not answer: the repository is opened, and an early helper a codec other than lzo does not want is stopped', async (t) => {
  const dir = await walDir();
  const file = await fileIdentity(path.join(dir, NAME));
  await writeMarker(dir, { format: 1, repo: 'file:///elsewhere', name: NAME, key: `wal/${NAME}`, rawSize: 4096, rawCrc32c: 'AAAAAA==', file: file! });
  const helper = countingHelper();
  let opened = 0;
  const storage = () => {
    opened++;
    return Promise.reject(new Error('no repository here'));
  };
  await t.throwsAsync(archiveWalFile(path.join(dir, NAME), options({ codec: 'zstd', storage: storage as () => Promise<Storage>, lzopHelper: helper })), {
    message: 'no repository here',
  });
  t.is(opened, 1);
  t.is(helper.stops, 1);
});
