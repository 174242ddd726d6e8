/**
 * What a file:// writer killed half-way leaves, and what the next access
 * does with it. The crash states are built on disk by hand, the way a kill
 * between two steps of a write leaves them (test/agent/crash/ kills real
 * processes at random moments).
 */
import test from 'ava';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../../../../agent/log.ts';
import { fetchWalFile } from '../../../../agent/wal/fetch.ts';
import { pushWalFile } from '../../../../agent/wal/push.ts';
import { createRepositoryIdentity } from '../../../../core/repository.ts';
import { FileStorage } from '../../../../core/storage/file/storage.ts';
import { ORPHAN_AGE_MS, TEMP_SWEEP_AGE_MS } from '../../../../core/storage/file/recovery.ts';
import { pendingSidecarName } from '../../../../core/storage/file/sidecar.ts';
import { readSmallObject } from '../../../../core/storage/objects.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-recovery-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo'), { mode: 0o700 });
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const metaPathOf = (s: FileStorage, key: string) => join(s.root, '.gcwal', 'meta', ...key.split('/')) + '.json';

/**
 * Turn a completed write of `key` into what a writer killed after linking
 * the data and before renaming its sidecar leaves: the sidecar back at its
 * pending name in .gcwal/tmp.
 */
async function unrenameSidecar(s: FileStorage, key: string): Promise<string> {
  const { ino } = await stat(join(s.root, ...key.split('/')), { bigint: true });
  const pending = join(s.root, '.gcwal', 'tmp', pendingSidecarName(key, ino));
  await rename(metaPathOf(s, key), pending);
  return pending;
}

const old = (ms: number) => new Date(Date.now() - ms - 60_000);

test('a create killed between linking its data and renaming its sidecar is finished by the next stat', async (t) => {
  const s = await fresh();
  const written = await s.write('wal/k', Readable.from([Buffer.from('whole object')]), { metadata: { codec: 'none' } });
  const pending = await unrenameSidecar(s, 'wal/k');
  const info = await s.stat('wal/k');
  t.deepEqual(info?.metadata, { codec: 'none' });
  t.is(info?.generation, written.generation);
  t.is(JSON.parse(await readFile(metaPathOf(s, 'wal/k'), 'utf8')).crc32c, written.crc32c);
  await t.throwsAsync(stat(pending), { code: 'ENOENT' });
});

test('a list and a create of the key finish such a create too', async (t) => {
  const s = await fresh();
  await s.write('a/one', Readable.from([Buffer.from('1')]), { metadata: { m: '1' } });
  await unrenameSidecar(s, 'a/one');
  const listed = [];
  for await (const info of s.list('a/')) listed.push(info);
  t.deepEqual(
    listed.map((i) => i.metadata),
    [{ m: '1' }],
  );

  await s.write('a/two', Readable.from([Buffer.from('2')]), { metadata: { m: '2' } });
  await unrenameSidecar(s, 'a/two');
  await t.throwsAsync(s.write('a/two', Readable.from([Buffer.from('2')])), { code: 'already_exists' });
  t.deepEqual((await s.stat('a/two'))?.metadata, { m: '2' });
});

test('the next wal-push of a segment whose first push was killed before its metadata landed exits 0 and the file restores', async (t) => {
  const s = await fresh();
  await createRepositoryIdentity(s, { systemIdentifier: '7000000000000000001', walSegmentSize: 16 * 1024 * 1024 });
  const work = await mkdtemp(join(tmpdir(), 'gcwal-file-recovery-wal-'));
  dirs.push(work);
  const history = join(work, '00000002.history');
  await writeFile(history, '1\t0/3000000\tno recovery target specified\n');
  const options = { codec: 'lzo' as const, level: undefined };
  t.is((await pushWalFile(s, history, options)).status, 'archived');
  await unrenameSidecar(s, 'wal/00000002.history');

  const again = await pushWalFile(s, history, options);
  t.is(again.status, 'already-archived');
  const dest = join(work, 'fetched');
  t.is(await fetchWalFile(s, '00000002.history', dest, { retries: 0, log: createLogger(new PassThrough(), 'text') }), 'fetched');
  t.deepEqual(await readFile(dest), await readFile(history));
});

test('data left with no sidecar at all is moved aside by the next create of its key once it is old', async (t) => {
  const s = await fresh();
  await mkdir(join(s.root, 'wal'), { recursive: true });
  const orphan = join(s.root, 'wal', 'seg');
  await writeFile(orphan, 'from a gcwal that linked data before writing any sidecar');
  const { ino } = await stat(orphan, { bigint: true });

  // Young: it may be a writer of an older version between its two steps.
  await t.throwsAsync(s.write('wal/seg', Readable.from([Buffer.from('new')])), { code: 'already_exists' });
  await utimes(orphan, old(ORPHAN_AGE_MS), old(ORPHAN_AGE_MS));
  const info = await s.write('wal/seg', Readable.from([Buffer.from('new')]), { metadata: { codec: 'none' } });
  t.deepEqual((await s.stat('wal/seg'))?.metadata, { codec: 'none' });
  t.is(info.size, 3);
  t.is((await readSmallObject(s, 'wal/seg')).toString(), 'new');
  const kept = join(s.root, '.gcwal', 'orphaned', `wal%2Fseg.${ino}`);
  t.is(await readFile(kept, 'utf8'), 'from a gcwal that linked data before writing any sidecar');
});

test('temp files of dead writers are swept once old, a pending sidecar of linked data is renamed, young ones stay', async (t) => {
  const s = await fresh();
  await s.write('k', Readable.from([Buffer.from('linked')]), { metadata: { m: 'k' } });
  const pending = await unrenameSidecar(s, 'k');
  const tmp = join(s.root, '.gcwal', 'tmp');
  const names = { oldData: '4242-aaaaaa', oldPending: pendingSidecarName('never-linked', 99n), young: '4243-bbbbbb' };
  for (const name of Object.values(names)) await writeFile(join(tmp, name), '{"size":1,"crc32c":"x","key":"never-linked"}');
  for (const p of [pending, join(tmp, names.oldData), join(tmp, names.oldPending)]) await utimes(p, old(TEMP_SWEEP_AGE_MS), old(TEMP_SWEEP_AGE_MS));

  // A new instance sweeps on its first write.
  const next = new FileStorage(s.url);
  await next.write('other', Readable.from([Buffer.from('x')]));
  t.deepEqual(await readdir(tmp), [names.young]);
  t.deepEqual(JSON.parse(await readFile(metaPathOf(s, 'k'), 'utf8')).metadata, { m: 'k' });
});
