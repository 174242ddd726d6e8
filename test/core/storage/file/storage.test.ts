import test from 'ava';
import { mkdtemp, readdir, rm, writeFile, readFile, mkdir, stat, rename, utimes } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FileStorage } from '../../../../core/storage/file/storage.ts';
import { readSmallObject } from '../../../../core/storage/objects.ts';
import { exec } from '../../../../local/testkit/exec.ts';
import { collect, storageContract } from '../contract.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-'));
  dirs.push(dir);
  const s = new FileStorage(pathToFileURL(join(dir, 'repo')).href);
  await s.createRoot();
  return s;
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

storageContract(test, 'file', fresh);

test('file: a write never creates a missing root directory: repo_missing, and the directory still does not exist', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-'));
  dirs.push(dir);
  const s = new FileStorage(pathToFileURL(join(dir, 'unmounted', 'repo')).href);
  const err = await t.throwsAsync(s.write('wal/000000010000000000000001', Readable.from([Buffer.from('raw bytes')])));
  t.like(err, { code: 'repo_missing', exitCode: 13 });
  t.regex(err!.message, /does not exist \(no directory .*unmounted\/repo\)/);
  await t.throwsAsync(s.write('catalogue/catalogue.json', Readable.from([Buffer.from('{}')]), { ifGenerationMatch: '5' }), { message: /does not exist/ });
  t.is(await s.stat('wal/000000010000000000000001'), undefined);
  t.deepEqual(await readdir(dir), [], 'nothing created');
});

test('file: createRoot makes the root and its parents with mode 0700, once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-'));
  dirs.push(dir);
  const s = new FileStorage(pathToFileURL(join(dir, 'a', 'repo')).href);
  t.true(await s.createRoot());
  t.false(await s.createRoot());
  t.is((await stat(s.root)).mode & 0o777, 0o700);
  await s.write('wal/000000010000000000000001', Readable.from([Buffer.from('raw bytes')]));
  t.deepEqual(await s.rootEntries(), ['wal']);
});

test('file: objects are plain files under the root so they can be read by hand', async (t) => {
  const s = await fresh();
  await s.write('wal/000000010000000000000001', Readable.from([Buffer.from('raw bytes')]));
  t.is(await readFile(join(s.root, 'wal', '000000010000000000000001'), 'utf8'), 'raw bytes');
});

test('file: an object whose metadata sidecar was lost still stats with its checksum', async (t) => {
  const s = await fresh();
  await mkdir(join(s.root, 'wal'), { recursive: true });
  await writeFile(join(s.root, 'wal', 'orphan'), 'data');
  const info = await s.stat('wal/orphan');
  t.is(info?.size, 4);
  t.deepEqual(info?.metadata, {});
  t.is((await collect(await s.read('wal/orphan'))).toString(), 'data');
});

test('file: keys that escape the root are refused', async (t) => {
  const s = await fresh();
  for (const key of ['../x', 'a/../../x', '/abs', 'a//b', '.gcwal/meta/x']) {
    await t.throwsAsync(s.write(key, Readable.from([Buffer.from('x')])), { message: /invalid object key/ }, key);
    await t.throwsAsync(s.delete(key), { message: /invalid object key/ }, key);
    await t.throwsAsync(s.delete(key, { ifGenerationMatch: '1' }), { message: /invalid object key/ }, key);
  }
});

/** A pid that is certainly not running: a child that has already exited. */
async function deadPid(): Promise<number> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

function lockPathOf(s: FileStorage, key: string): string {
  return join(s.root, '.gcwal', 'locks', ...key.split('/')) + '.lock';
}

test('file: an object whose sidecar predates generations has a stable generation and can be replaced', async (t) => {
  const s = await fresh();
  await s.write('catalogue/catalogue.json', Readable.from([Buffer.from('{"v":1}')]));
  // Rewrite the sidecar the way the driver wrote it before generations existed.
  const metaPath = join(s.root, '.gcwal', 'meta', 'catalogue', 'catalogue.json.json');
  const { generation: _g, ino: _i, ...legacy } = JSON.parse(await readFile(metaPath, 'utf8')) as Record<string, unknown>;
  await writeFile(metaPath, JSON.stringify(legacy));
  const first = await s.stat('catalogue/catalogue.json');
  const again = await s.stat('catalogue/catalogue.json');
  t.is(first?.generation, again?.generation);
  t.is(first?.generation, (await stat(join(s.root, 'catalogue', 'catalogue.json'), { bigint: true })).mtimeNs.toString());
  const replaced = await s.write('catalogue/catalogue.json', Readable.from([Buffer.from('{"v":2}')]), { ifGenerationMatch: first!.generation });
  t.true(BigInt(replaced.generation) > BigInt(first!.generation));
  t.is((await readSmallObject(s, 'catalogue/catalogue.json')).toString(), '{"v":2}');
});

test('file: an object without a sidecar reports the generation its sidecar would have recorded', async (t) => {
  const s = await fresh();
  const info = await s.write('k', Readable.from([Buffer.from('data')]));
  await rm(join(s.root, '.gcwal', 'meta', 'k.json'));
  t.is((await s.stat('k'))?.generation, info.generation);
});

test('file: a lock left by a process that died is broken at once', async (t) => {
  const s = await fresh();
  const info = await s.write('cat', Readable.from([Buffer.from('one')]));
  await mkdir(join(s.root, '.gcwal', 'locks'), { recursive: true });
  await writeFile(lockPathOf(s, 'cat'), JSON.stringify({ pid: await deadPid(), host: hostname(), nonce: 'n', acquired: new Date().toISOString() }));
  const started = Date.now();
  await s.write('cat', Readable.from([Buffer.from('two')]), { ifGenerationMatch: info.generation });
  t.true(Date.now() - started < 20_000, 'not left to go stale (30 s)');
  t.is((await readSmallObject(s, 'cat')).toString(), 'two');
  await t.throwsAsync(stat(lockPathOf(s, 'cat')), { code: 'ENOENT' });
});

test('file: a lock older than the stale limit is broken even when its owner cannot be checked', async (t) => {
  const s = await fresh();
  const info = await s.write('cat', Readable.from([Buffer.from('one')]));
  await mkdir(join(s.root, '.gcwal', 'locks'), { recursive: true });
  // Empty: its owner crashed before writing who it was (or it is on another host).
  await writeFile(lockPathOf(s, 'cat'), '');
  const old = new Date(Date.now() - 120_000);
  await utimes(lockPathOf(s, 'cat'), old, old);
  await s.delete('cat', { ifGenerationMatch: info.generation });
  t.is(await s.stat('cat'), undefined);
});

test('file: a replace waits while another live process holds the lock', async (t) => {
  const s = await fresh();
  const info = await s.write('cat', Readable.from([Buffer.from('one')]));
  await mkdir(join(s.root, '.gcwal', 'locks'), { recursive: true });
  // This very process is alive: the lock is respected until removed.
  await writeFile(lockPathOf(s, 'cat'), JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'held', acquired: new Date().toISOString() }));
  let done = false;
  const pending = s.write('cat', Readable.from([Buffer.from('two')]), { ifGenerationMatch: info.generation }).then((r) => {
    done = true;
    return r;
  });
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.false(done);
  t.is((await readSmallObject(s, 'cat')).toString(), 'one');
  await rm(lockPathOf(s, 'cat'));
  await pending;
  t.is((await readSmallObject(s, 'cat')).toString(), 'two');
});

test('file: a replace that died between its two renames is finished by the next reader', async (t) => {
  const s = await fresh();
  const v1 = await s.write('cat', Readable.from([Buffer.from('one')]));
  // Stage v2 through the driver under another key, then move its files into
  // the state a crash after the data rename leaves: new data live, the new
  // sidecar still in the temp dir, the lock naming both.
  const v2 = await s.write('staging', Readable.from([Buffer.from('two, new')]), { metadata: { v: '2' } });
  const tmpMeta = join(s.root, '.gcwal', 'tmp', 'crashed.json');
  await rename(join(s.root, '.gcwal', 'meta', 'staging.json'), tmpMeta);
  await rename(join(s.root, 'staging'), join(s.root, 'cat'));
  await mkdir(join(s.root, '.gcwal', 'locks'), { recursive: true });
  const journal = { tmpData: join(s.root, '.gcwal', 'tmp', 'crashed'), tmpMeta, metaPath: join(s.root, '.gcwal', 'meta', 'cat.json') };
  await writeFile(
    lockPathOf(s, 'cat'),
    JSON.stringify({ ...journal, pid: await deadPid(), host: hostname(), nonce: 'dead', acquired: new Date().toISOString() }),
  );
  const st = await s.stat('cat');
  t.is(st?.generation, v2.generation);
  t.is(st?.size, 8);
  t.deepEqual(st?.metadata, { v: '2' });
  t.not(st?.generation, v1.generation);
  await t.throwsAsync(stat(lockPathOf(s, 'cat')), { code: 'ENOENT' });
  t.is((await readSmallObject(s, 'cat')).toString(), 'two, new');
});

test('file: a replace that died before renaming anything is undone', async (t) => {
  const s = await fresh();
  const v1 = await s.write('cat', Readable.from([Buffer.from('one')]));
  const tmpDir = join(s.root, '.gcwal', 'tmp');
  const journal = { tmpData: join(tmpDir, 'crashed'), tmpMeta: join(tmpDir, 'crashed.json'), metaPath: join(s.root, '.gcwal', 'meta', 'cat.json') };
  await writeFile(journal.tmpData, 'half');
  await writeFile(journal.tmpMeta, '{}');
  await mkdir(join(s.root, '.gcwal', 'locks'), { recursive: true });
  await writeFile(
    lockPathOf(s, 'cat'),
    JSON.stringify({ ...journal, pid: await deadPid(), host: hostname(), nonce: 'dead', acquired: new Date().toISOString() }),
  );
  const v2 = await s.write('cat', Readable.from([Buffer.from('two')]), { ifGenerationMatch: v1.generation });
  t.is((await s.stat('cat'))?.generation, v2.generation);
  await t.throwsAsync(stat(journal.tmpData), { code: 'ENOENT' });
  await t.throwsAsync(stat(journal.tmpMeta), { code: 'ENOENT' });
});

test('file: read-modify-write from several processes at once loses no update', async (t) => {
  const s = await fresh();
  await s.write('counter', Readable.from([Buffer.from('{"by":[]}')]));
  const worker = fileURLToPath(new URL('./cas-worker.ts', import.meta.url));
  const processes = 4;
  const iterations = 15;
  const results = await Promise.all(
    Array.from({ length: processes }, (_, i) =>
      exec(process.execPath, ['--import=tsx', worker, s.url, 'counter', String(iterations), `w${i}`], { env: process.env, timeoutMs: 120_000 }),
    ),
  );
  for (const r of results) t.is(r.code, 0, r.stderr);
  const body = JSON.parse((await readSmallObject(s, 'counter')).toString()) as { by: string[] };
  t.is(body.by.length, processes * iterations);
  t.is(new Set(body.by).size, processes * iterations);
  t.log(`conflicts retried: ${results.map((r) => r.stdout.trim()).join(', ')}`);
});
