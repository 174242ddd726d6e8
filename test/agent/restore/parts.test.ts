import test from 'ava';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { PassThrough, Transform, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../../../agent/log.ts';
import { DirectorySet } from '../../../agent/restore/disk.ts';
import type { ExtractTarget } from '../../../agent/restore/extract.ts';
import { restoreParts } from '../../../agent/restore/parts.ts';
import { CorruptObjectError } from '../../../core/errors.ts';
import { backupPartKey } from '../../../core/layout.ts';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { makeTempDir } from '../../../local/testkit/tmp.ts';
import { BACKUP_NAME, manifestEntryOf, writeFixtureBackup, type FixtureEntry } from './fixture.ts';

test('a part missing from the repository is a damaged backup, named by its index and key', async (t) => {
  const dir = await makeTempDir('parts');
  t.teardown(dir.cleanup);
  const storage = new FileStorage(pathToFileURL(path.join(dir.path, 'repo')).href);
  const entries: FixtureEntry[] = [
    { path: 'a', content: 'a' },
    { path: 'b', content: 'b', part: 1 },
  ];
  const meta = await writeFixtureBackup(storage, { entries, parts: 2 });
  await storage.delete(backupPartKey(BACKUP_NAME, 1));
  const dest = path.join(dir.path, 'data');
  const target: ExtractTarget = {
    backupName: BACKUP_NAME,
    dest,
    tablespaces: new Map(),
    manifest: new Map(entries.map((e) => [e.path, manifestEntryOf(e)])),
    seen: new Set(),
    dirs: new DirectorySet(),
    progress: { add: () => {}, done: () => {} },
  };
  const log = createLogger(new Writable({ write: (_c, _e, done) => done() }), 'text');
  const err = await t.throwsAsync(restoreParts(storage, meta, target, { concurrency: 1, retries: 2, log }), { instanceOf: CorruptObjectError });
  t.is(err!.message, `part 1 (backups/${BACKUP_NAME}/part_00001.tar) of backup ${BACKUP_NAME} is missing from the repository`);
});

/** A restore target for `entries` under `dest`. */
function targetFor(dest: string, entries: FixtureEntry[]): ExtractTarget {
  return {
    backupName: BACKUP_NAME,
    dest,
    tablespaces: new Map(),
    manifest: new Map(entries.map((e) => [e.path, manifestEntryOf(e)])),
    seen: new Set(),
    dirs: new DirectorySet(),
    progress: { add: () => {}, done: () => {} },
  };
}

const quiet = () => createLogger(new Writable({ write: (_c, _e, done) => done() }), 'text');

/** Six parts of three files each, some of them larger than a write batch. */
const sixParts: FixtureEntry[] = Array.from({ length: 18 }, (_, i) => ({
  path: `base/1/${16384 + i}`,
  content: Buffer.alloc(i % 3 === 0 ? 700 * 1024 : 3000 + i, `file ${i} `),
  part: Math.floor(i / 3),
}));

test('parts are restored as many at once as the concurrency says, never more, and the files are the same whatever the order', async (t) => {
  const dir = await makeTempDir('parts');
  t.teardown(dir.cleanup);
  const storage = new FileStorage(pathToFileURL(path.join(dir.path, 'repo')).href);
  const meta = await writeFixtureBackup(storage, { entries: sixParts, parts: 6 });
  for (const concurrency of [1, 3]) {
    // Each read waits until `concurrency` reads are open (or every part has
    // started): restoring one part after another would never get there.
    let open = 0;
    let most = 0;
    let started = 0;
    let gateTimedOut = false;
    const waiting: (() => void)[] = [];
    const gated = Object.create(storage) as FileStorage;
    gated.read = async (key, options) => {
      if (!key.includes('/part_')) return storage.read(key, options);
      started++;
      open++;
      most = Math.max(most, open);
      if (open >= concurrency || started === meta.parts.length) for (const go of waiting.splice(0)) go();
      else {
        await new Promise<void>((resolve) => {
          let released = false;
          waiting.push(() => {
            released = true;
            resolve();
          });
          setTimeout(() => {
            if (!released) gateTimedOut = true;
            resolve();
          }, 5000).unref();
        });
      }
      const stream = await storage.read(key, options);
      stream.once('close', () => open--);
      return stream;
    };
    const dest = path.join(dir.path, `data-${concurrency}`);
    const totals = await restoreParts(gated, meta, targetFor(dest, sixParts), { concurrency, retries: 0, log: quiet() });
    t.deepEqual(totals, { files: 18, bytes: sixParts.reduce((n, e) => n + Buffer.byteLength(e.content!), 0) });
    t.is(most, concurrency, `at most and at least ${concurrency} parts at once`);
    t.false(gateTimedOut, `${concurrency} parts were read together`);
    // Buffer.equals: ava's deepEqual takes seconds over 700 KiB.
    for (const e of sixParts) t.true((await readFile(path.join(dest, e.path))).equals(Buffer.from(e.content!)), e.path);
  }
});

test('a damaged part stops the parts being read beside it, and the restore fails with the damage', async (t) => {
  const dir = await makeTempDir('parts');
  t.teardown(dir.cleanup);
  const storage = new FileStorage(pathToFileURL(path.join(dir.path, 'repo')).href);
  const meta = await writeFixtureBackup(storage, { entries: sixParts, parts: 6 });
  const damagedKey = backupPartKey(BACKUP_NAME, 2);
  const aborted: string[] = [];
  const held = Object.create(storage) as FileStorage;
  held.read = async (key, options) => {
    const stream = await storage.read(key, options);
    if (key === damagedKey) {
      // The stored bytes of part 2 arrive with one byte flipped.
      return stream.pipe(new Transform({ transform: (chunk: Buffer, _e, done) => done(null, Buffer.from(chunk.map((b, i) => (i === 40 ? b ^ 1 : b)))) }));
    }
    if (!key.includes('/part_')) return stream;
    // Every other part sends nothing until it is stopped.
    const stalled = new PassThrough();
    options?.signal?.addEventListener('abort', () => {
      aborted.push(key);
      stalled.destroy(options.signal!.reason as Error);
    });
    return stalled;
  };
  const dest = path.join(dir.path, 'data');
  await t.throwsAsync(restoreParts(held, meta, targetFor(dest, sixParts), { concurrency: 3, retries: 0, log: quiet() }), { instanceOf: CorruptObjectError });
  t.deepEqual(
    aborted.sort(),
    [backupPartKey(BACKUP_NAME, 0), backupPartKey(BACKUP_NAME, 1)],
    'the two parts in flight beside it were stopped, no later part was started',
  );
});
